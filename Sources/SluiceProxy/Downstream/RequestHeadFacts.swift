import NIOHTTP1
import SluiceRouting

/// `RequestFacts` as a view over a request head: nothing is copied up front; the routing core
/// asks only for what its matchers need, and header values are read where they lie.
struct RequestHeadFacts: RequestFacts {
    let request: UpstreamRequest

    var head: RequestHead { request.head }

    var method: String { head.method.rawValue }

    /// The Host (or absolute-form authority), made a string only when a route matches hosts.
    var authority: String? { request.host }

    var path: Substring {
        let uri = head.uri[...]
        let end = uri.firstIndex(where: { $0 == "?" || $0 == "#" }) ?? uri.endIndex
        return uri[..<end]
    }

    var query: Substring? {
        let uri = head.uri
        guard let q = uri.firstIndex(of: "?") else { return nil }
        let rest = uri[uri.index(after: q)...]
        return rest.firstIndex(of: "#").map { rest[..<$0] } ?? rest
    }

    func firstHeaderValue<T>(_ lowercasedName: String, _ body: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
        request.head.firstFieldValue(of: lowercasedName, body)
    }
}
