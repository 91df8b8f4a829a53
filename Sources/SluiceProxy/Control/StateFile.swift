import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One live change made through the admin API: new weights for a split, or the backend a
/// blue-green route made active.
public enum LiveChange: Sendable, Equatable {
    case weights([String: Int])
    case active(String)
}

/// A live change with when it was made and the fingerprint of the route definition it was made
/// against (a reload or restart that changes the route's own definition drops it).
public struct LiveEntry: Sendable, Equatable {
    public var change: LiveChange
    public var at: Date
    public var fingerprint: String
}

/// The `state` file: every live change, written before the API acknowledges it.
///
/// Format (JSON, version 1):
/// `{"version":1,"routes":{"checkout":{"weights":{"checkout-v1":90,"checkout-v2":10},
///   "at":"2026-11-28T10:01:00Z","fingerprint":"..."},"api":{"active":"api-green",...}}}`
///
/// Writes are atomic and durable: a temporary file in the same directory is written and
/// fsynced, renamed over the old one, and the directory is fsynced, so a crash at any point
/// leaves either the old state or the new one.
enum StateFile {
    struct Corrupt: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "state file \(path) is unreadable: \(reason); starting from the config file alone" }
    }

    static func encode(_ entries: [String: LiveEntry]) -> Data {
        var routes: [String: Any] = [:]
        for (route, entry) in entries {
            var object: [String: Any] = ["at": iso8601(entry.at), "fingerprint": entry.fingerprint]
            switch entry.change {
            case .weights(let w): object["weights"] = w
            case .active(let name): object["active"] = name
            }
            routes[route] = object
        }
        let root: [String: Any] = ["version": 1, "routes": routes]
        return (try? JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .prettyPrinted])) ?? Data()
    }

    /// One route's entry; `JSONDecoder` is strict about types (a `true`, `"5"` or `0.5` is no weight).
    private struct RouteEntry: Decodable {
        var weights: [String: Int]?
        var active: String?
        var at: String
        var fingerprint: String
    }

    static func decode(_ data: Data, path: String) throws(Corrupt) -> [String: LiveEntry] {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw Corrupt(path: path, reason: "not a JSON object")
        }
        guard let version = root["version"] as? NSNumber, "\(version)" == "1" else {
            throw Corrupt(path: path, reason: "unknown or missing version (expected 1)")
        }
        guard let routes = root["routes"] as? [String: Any] else {
            throw Corrupt(path: path, reason: "missing 'routes' object")
        }
        var out: [String: LiveEntry] = [:]
        for (route, value) in routes {
            guard value is [String: Any], let raw = try? JSONSerialization.data(withJSONObject: value) else {
                throw Corrupt(path: path, reason: "route '\(route)' is not an object")
            }
            let entry: RouteEntry
            do {
                entry = try JSONDecoder().decode(RouteEntry.self, from: raw)
            } catch let error as DecodingError {
                throw Corrupt(path: path, reason: "route '\(route)': \(describe(error))")
            } catch {
                throw Corrupt(path: path, reason: "route '\(route)': \(error)")
            }
            guard let at = parseISO8601(entry.at) else {
                throw Corrupt(path: path, reason: "route '\(route)': 'at' is not an ISO 8601 time")
            }
            switch (entry.weights, entry.active) {
            case (let weights?, nil):
                out[route] = LiveEntry(change: .weights(weights), at: at, fingerprint: entry.fingerprint)
            case (nil, let active?):
                out[route] = LiveEntry(change: .active(active), at: at, fingerprint: entry.fingerprint)
            default:
                throw Corrupt(path: path, reason: "route '\(route)' needs exactly one of 'weights' and 'active'")
            }
        }
        return out
    }

    /// A decoding error as "where: what", e.g. `routes.web.weights.a: expected Int`.
    private static func describe(_ error: DecodingError) -> String {
        func where_(_ path: [CodingKey], _ key: CodingKey? = nil) -> String {
            let names = (path + (key.map { [$0] } ?? [])).map(\.stringValue)
            return names.isEmpty ? "top level" : names.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(where_(context.codingPath)): missing '\(key.stringValue)'"
        case .typeMismatch(let type, let context):
            return "\(where_(context.codingPath)): expected \(type)"
        case .valueNotFound(let type, let context):
            return "\(where_(context.codingPath)): expected \(type), found null"
        case .dataCorrupted(let context):
            return "\(where_(context.codingPath)): a value has the wrong type or form"
        @unknown default:
            return "\(error)"
        }
    }

    /// Reads the file; a missing file is an empty state.
    static func load(_ path: String) throws(Corrupt) -> [String: LiveEntry] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Corrupt(path: path, reason: "cannot read it")
        }
        return try decode(data, path: path)
    }

    struct WriteError: Error, CustomStringConvertible {
        let description: String
    }

    /// temp file → fsync → rename → fsync(directory).
    static func write(_ entries: [String: LiveEntry], to path: String) throws(WriteError) {
        let data = encode(entries)
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw WriteError(description: "cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let ok = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard ok, synced else {
            unlink(tmp)
            throw WriteError(description: "cannot write \(tmp): \(String(cString: strerror(errno)))")
        }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw WriteError(description: "cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))")
        }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}

func iso8601(_ date: Date) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: date)
}

func parseISO8601(_ text: String) -> Date? {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.date(from: text)
}
