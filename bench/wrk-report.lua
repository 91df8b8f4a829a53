-- wrk reporter used by bench/run.sh: only a done() hook, so wrk keeps its fast request path.
-- Prints one machine-readable line:
--   WRK requests=N duration_us=N rps=F p50_us=N p99_us=N connect=N read=N write=N status=N timeout=N
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
