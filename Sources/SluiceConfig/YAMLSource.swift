import Yams

/// Stage 1: text → YAML node tree with positions. A syntax error stops here, as one problem at
/// the place libyaml reports (Yams' marks are already 1-based).
///
/// The tree is composed with Yams' `basic` resolver: scalars keep their text and style and get no
/// implicit type tag. `ConfigNode` types every value itself (YAML 1.2 spellings, exact messages),
/// so the default resolver's work was never read — and it compiled seven ICU regular expressions
/// on the first load, which kept ~2 MiB of ICU and Foundation pages resident for the life of the
/// process (benchmark scenario 5).
enum YAMLSource {
    static func compose(_ text: String, _ diagnostics: inout Diagnostics) -> Node? {
        do {
            return try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            let (location, message) = describe(error, text: text)
            diagnostics.error(message, at: location)
        } catch {
            diagnostics.error("invalid YAML: \(error)", at: .start)
        }
        return nil
    }

    private static func describe(_ error: YamlError, text: String) -> (SourceLocation, String) {
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let at = SourceLocation(line: mark.line, column: mark.column)
            if problem == "but found another document" {
                return (at, "invalid YAML: the file must hold a single document (found a second '---')")
            }
            if problem.contains("cannot start any token"), character(at: at, in: text) == "\t" {
                return (at, "invalid YAML: a tab cannot indent or separate YAML; use spaces")
            }
            guard let context else { return (at, "invalid YAML: \(problem)") }
            return (at, "invalid YAML: \(problem) (\(context.text) at line \(context.mark.line), column \(context.mark.column))")
        case .reader(let problem, let offset, _, _):
            return (location(ofCharacter: offset ?? 0, in: text), "invalid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.first ?? "?"
            let first = SourceLocation(line: context.mark.line, column: context.mark.column)
            if let second = secondOccurrence(ofKey: key, after: first, in: text) {
                return (second, "duplicate key '\(key)' (first at line \(first.line))")
            }
            return (first, "duplicate key '\(key)'")
        default:
            return (.start, "invalid YAML: \(error)")
        }
    }

    private static func character(at location: SourceLocation, in text: String) -> Unicode.Scalar? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard location.line >= 1, location.line <= lines.count else { return nil }
        let scalars = Array(lines[location.line - 1].unicodeScalars)
        return location.column >= 1 && location.column <= scalars.count ? scalars[location.column - 1] : nil
    }

    private static func location(ofCharacter offset: Int, in text: String) -> SourceLocation {
        var location = SourceLocation.start
        for character in text.prefix(offset) {
            if character == "\n" || character == "\r\n" {
                location.line += 1
                location.column = 1
            } else {
                location.column += character.unicodeScalars.count
            }
        }
        return location
    }

    /// Yams reports a duplicate key at its first occurrence; the useful place is the repeat. Look
    /// for `key:` at the same indentation further down (block style), then later on the same
    /// line (flow style).
    private static func secondOccurrence(ofKey key: String, after first: SourceLocation,
                                         in text: String) -> SourceLocation? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        guard first.line >= 1, first.line <= lines.count else { return nil }
        let spellings = [key, "\"\(key)\"", "'\(key)'"].map { Array(($0 + ":").unicodeScalars) }
        func keyStarts(_ line: [Unicode.Scalar], at column: Int) -> Bool {
            spellings.contains { spelling in
                let start = column - 1
                return start >= 0 && start + spelling.count <= line.count
                    && Array(line[start..<start + spelling.count]) == spelling
            }
        }
        let firstLine = lines[first.line - 1]
        var column = first.column + 1
        while column <= firstLine.count {
            if keyStarts(firstLine, at: column), column == 1 || !isNameScalar(firstLine[column - 2]) {
                return SourceLocation(line: first.line, column: column)
            }
            column += 1
        }
        var lineNumber = first.line + 1
        while lineNumber <= lines.count {
            let line = lines[lineNumber - 1]
            let content = line.drop { $0 == " " }
            let indent = line.count - content.count
            // A shallower line that is not blank or a comment ends the mapping.
            if indent + 1 < first.column, let start = content.first, start != "#", start != "\r" { break }
            if keyStarts(line, at: first.column) { return SourceLocation(line: lineNumber, column: first.column) }
            lineNumber += 1
        }
        return nil
    }

    private static func isNameScalar(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "-" || scalar == "_"
    }
}
