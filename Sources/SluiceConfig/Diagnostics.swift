/// A position in the config file: 1-based line and column, as editors show them (columns count
/// Unicode scalars, as libyaml does).
struct SourceLocation: Hashable, Comparable, Sendable, CustomStringConvertible {
    var line: Int
    var column: Int

    static let start = SourceLocation(line: 1, column: 1)

    static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.line, a.column) < (b.line, b.column)
    }

    var description: String { "\(line):\(column)" }
}

/// A value from the file together with where it was written, so that a later stage (validation,
/// compilation) can still point at it.
struct Located<Value> {
    var value: Value
    var at: SourceLocation
}

/// Collects every problem of one file. Nothing stops at the first error: each stage reports what
/// it finds and carries on with what is usable, so `sluice check` shows the whole list at once.
struct Diagnostics {
    private(set) var problems: [(at: SourceLocation, message: String)] = []

    var isEmpty: Bool { problems.isEmpty }

    mutating func error(_ message: String, at location: SourceLocation) {
        problems.append((location, message))
    }

    /// The problems as `ConfigError`s for `file`, in file order (line, then column; problems at
    /// the same spot keep the order they were found in), without exact duplicates.
    func errors(file: String) -> [ConfigError] {
        var seen = Set<String>()
        return problems.enumerated()
            .sorted { a, b in a.element.at != b.element.at ? a.element.at < b.element.at : a.offset < b.offset }
            .compactMap { _, problem in
                let error = ConfigError(file: file, line: problem.at.line, column: problem.at.column,
                                        message: problem.message)
                return seen.insert(error.description).inserted ? error : nil
            }
    }
}
