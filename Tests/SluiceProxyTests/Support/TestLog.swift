import Logging

/// The warnings and errors the proxies the tests start log, kept so that a test can look for a
/// line (everything is written to standard error as before). Swift's logging takes one
/// bootstrap per process: `install` makes it once, and only loggers made after it (a proxy's,
/// when its harness starts) record.
enum TestLog {
    private static let lines = LockedBox<[String]>([])

    static let install: Void = LoggingSystem.bootstrap { label in
        MultiplexLogHandler([StreamLogHandler.standardError(label: label), Recorder()])
    }

    /// Whether a line logged so far holds every one of `parts` (its message and metadata).
    static func contains(_ parts: String...) -> Bool {
        lines.withLock { $0.contains { line in parts.allSatisfy(line.contains) } }
    }

    private struct Recorder: LogHandler {
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            guard event.level >= .warning else { return }
            let fields = metadata.merging(event.metadata ?? [:]) { $1 }
            let line = "\(event.level) \(event.message) " + fields.map { "\($0)=\($1)" }.sorted().joined(separator: " ")
            TestLog.lines.withLock { $0.append(line) }
        }
    }
}
