import SluiceMetrics
import SluiceRouting

/// `GET /metrics`: the merged loop statistics plus the gauges only the snapshot knows.
enum MetricsReport {
    static func text(view: ControlPlane.View, stats: ShardCopy, keys: [SeriesKey], server: SluiceServer) -> String {
        var weights: [(route: String, backend: String, weight: Int)] = []
        var active: [(route: String, backend: String, active: Bool)] = []
        let table = view.table
        for route in table.routes {
            if let w = route.weights {
                for entry in w { weights.append((route.name, table.backendName(entry.backend), entry.weight)) }
            }
            if let bg = route.blueGreen {
                active.append((route.name, table.backendName(bg.active), true))
                active.append((route.name, table.backendName(bg.preview), false))
            }
        }
        let gauges = ProxyGauges(weights: weights, active: active, generation: view.generation,
                                 reloadsOK: UInt64(view.reloadsOK), reloadsError: UInt64(view.reloadsError))
        return PrometheusText.render(stats, keys: keys, gauges: gauges)
    }
}
