import Foundation
import SluiceMetrics
import SluiceRouting

/// `GET /status`: the routing state and per-version figures a canary judgement needs.
/// Shape: SPEC "Admin API" (fields may be added, never renamed); documented in the README.
enum StatusReport {
    /// `cooling`: the endpoints passed over after failed connects (`SluiceServer.coolingEndpoints`),
    /// listed per version as `endpointsCoolingDown` (primary traffic) and on the mirror.
    static func json(view: ControlPlane.View, stats: ShardCopy, keys: [SeriesKey], server: SluiceServer,
                     cooling: (primary: Set<String>, shadow: Set<String>) = ([], [])) -> [String: Any] {
        let table = view.table
        let snapshot = server.store.load()
        func coolingDown(_ backend: Int, in set: Set<String>) -> [String] {
            guard !set.isEmpty, backend < snapshot.backends.count else { return [] }
            return snapshot.backends[backend].endpoints.map(\.endpointText).filter(set.contains)
        }
        var routes: [[String: Any]] = []
        for (index, route) in table.routes.enumerated() {
            var entry: [String: Any] = ["name": route.name, "target": route.targetKind]
            switch route.target {
            case .backend(let id):
                entry["backend"] = table.backendName(id)
            case .split:
                var weights: [String: Int] = [:]
                for w in table.weights(of: RouteID(index)) ?? [] { weights[w.backend] = w.weight }
                entry["weights"] = weights
            case .blueGreen(let bg):
                entry["active"] = table.backendName(bg.active)
                entry["preview"] = table.backendName(bg.preview)
                entry["previewHeader"] = bg.previewHeader
            }
            if let live = view.live[route.name] {
                var object: [String: Any] = ["at": iso8601(live.at)]
                switch live.change {
                case .weights(let w): object["weights"] = w
                case .active(let a): object["active"] = a
                }
                entry["live"] = object
            } else {
                entry["live"] = NSNull()
            }
            var versions: [[String: Any]] = []
            var seen = Set<Int>()
            var backends = route.backends
            if let mirror = route.mirror { backends.removeAll { $0 == mirror.backend } }
            for backend in backends where seen.insert(backend.index).inserted {
                guard index < snapshot.series.count, backend.index < snapshot.series[index].count else { continue }
                let id = snapshot.series[index][backend.index]
                let window = stats.window(series: id)
                let spec = view.configuration.backends[backend.index]
                var row: [String: Any] = [
                    "backend": spec.name, "version": spec.version,
                    "requests": window.requests, "errors": window.errors, "errorRate": window.errorRate,
                    "p50": window.p50, "p95": window.p95, "p99": window.p99,
                    "inflight": id < stats.series.count ? stats.series[id].inflight : 0,
                    "endpointsCoolingDown": coolingDown(backend.index, in: cooling.primary),
                ]
                if let weights = route.weights, let w = weights.first(where: { $0.backend == backend }) {
                    row["weight"] = w.weight
                }
                versions.append(row)
            }
            entry["versions"] = versions
            if let mirror = route.mirror, index < snapshot.series.count {
                let id = snapshot.series[index][mirror.backend.index]
                let spec = view.configuration.backends[mirror.backend.index]
                let s = id < stats.series.count ? stats.series[id] : SeriesStats()
                entry["mirror"] = [
                    "backend": spec.name, "version": spec.version, "percent": mirror.percent,
                    "sent": s.mirror[MirrorResult.sent.rawValue], "completed": s.mirror[MirrorResult.completed.rawValue],
                    "failed": s.mirror[MirrorResult.failed.rawValue], "dropped": s.mirror[MirrorResult.dropped.rawValue],
                    "endpointsCoolingDown": coolingDown(mirror.backend.index, in: cooling.shadow),
                ] as [String: Any]
            }
            routes.append(entry)
        }
        var lastReload: Any = NSNull()
        if let r = view.lastReload {
            lastReload = ["ok": r.ok, "error": r.error.map { $0 as Any } ?? NSNull(), "at": iso8601(r.at)] as [String: Any]
        }
        var out: [String: Any] = [
            "generation": view.generation, "config": view.configuration.path, "lastReload": lastReload,
            "reloads": ["ok": view.reloadsOK, "error": view.reloadsError], "routes": routes,
            "unrouted": stats.unrouted,
        ]
        if let problem = view.stateProblem { out["stateError"] = problem }
        return out
    }
}
