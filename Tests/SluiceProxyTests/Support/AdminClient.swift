import Foundation
import SluiceProxy

/// The admin client the tests use: `AdminSocketClient` (the one `sluice ctl` uses), with
/// helpers for reading answers. Blocking; run it on a thread of its own (`onThread`).
enum TestAdminClient {

    struct Response: CustomStringConvertible {
        var status: Int
        var headers: [(String, String)]
        var body: String

        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
        /// The body parsed as a JSON object (empty when it is not one).
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
        /// The `error` field of a JSON error body.
        var error: String? { json["error"] as? String }
        var description: String { "HTTP \(status): \(body.trimmingCharacters(in: .whitespacesAndNewlines))" }
    }

    /// Sends `method target` with `body` (nil: no body; "" sends `Content-Length: 0`).
    static func request(socket path: String, _ method: String, _ target: String, body: String? = nil,
                        timeout: Double = 10) throws -> Response {
        let r = try AdminSocketClient.request(socket: path, method, target, body: body, timeout: timeout)
        return Response(status: r.status, headers: r.headers, body: r.body)
    }
}
