#!/usr/bin/env python3
"""Turn bench/run.sh's raw data (bench/out/raw.tsv, rss.tsv, callgrind.tsv, meta.txt) into one
markdown table: printed to stdout and written to bench/out/results.md.

    report.py bench/out
"""
import math
import re
import statistics
import sys
from pathlib import Path

SCENARIOS = {
    "s1": "1 plain proxying",
    "s2": "2 canary 90/10 sticky + 2 A/B rules",
    "s3": "3 100% shadow to a 1 s backend",
    "s4": "4 SIGHUP every 100 ms",
    "s6": "6 HTTP/2 (h2c): h2load -c 10 -m 10 (p50 column: mean)",
    "s7": "7 a new connection per request (Connection: close)",
    "s8": "8 plain proxying over TLS 1.3 (keep-alive)",
    "s9": "9 a TLS handshake per request (Connection: close)",
    "s10": "10 HTTP/2 over TLS 1.3 (h2 by ALPN): h2load -c 10 -m 10 (p50 column: mean)",
    "s11": "11 HTTP/2 on both sides (h2c to an h2c origin): h2load -c 10 -m 10 (p50 column: mean)",
}
# Scenarios compared with Sluice's own figure in the same scenario, not with scenario 1.
OWN_BASE = {"s6": "HTTP/2", "s7": "scenario 7", "s8": "scenario 8", "s9": "scenario 9", "s10": "scenario 10",
            "s11": "scenario 11"}
PROXIES = ["sluice", "nginx", "haproxy"]
NAMES = {"sluice": "Sluice", "nginx": "nginx", "haproxy": "HAProxy"}


def rows_of(path):
    if not path.exists():
        return []
    return [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line.strip()]


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def ms(us):
    return "—" if us is None else f"{us / 1000:.2f} ms"


def ratio(value, base):
    if value is None or not base:
        return "—"
    return f"{value / base:.2f}"


def sign_test(what, pairs, proxy):
    """With enough rounds, how often Sluice came out ahead of another proxy in its round (more
    requests/s: a ratio below 1; a lower p99: above 1), and the two-sided sign test's p-value for
    "neither is ahead" (ties count for neither side): one round's drift can turn a median, a
    count over many rounds says whether a lead is real."""
    if proxy == "sluice" or len(pairs) < 5:
        return ""
    ahead = sum(1 for x in pairs if (x < 1 if what == "req/s" else x > 1))
    behind = sum(1 for x in pairs if (x > 1 if what == "req/s" else x < 1))
    n = ahead + behind
    if n == 0:
        return ""
    tail = sum(math.comb(n, k) for k in range(0, min(ahead, behind) + 1)) / 2 ** n
    return f", Sluice ahead in {ahead} of {len(pairs)} (sign test p = {min(1.0, 2 * tail):.2g})"


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/out")
    meta = {}
    for line in (out / "meta.txt").read_text().splitlines() if (out / "meta.txt").exists() else []:
        key, _, value = line.partition("=")
        meta[key] = value

    # scenario, proxy, round, rps, p50_us, p99_us, connect, read, write, status, timeout, note
    runs = {}
    for r in rows_of(out / "raw.tsv"):
        r += [""] * (12 - len(r))
        runs.setdefault((r[0], r[1]), []).append(r)

    table = []  # (scenario, proxy, rps, p50, p99, errors, extra, ratio, notes)
    agg = {}
    # req/s per round, for ratios within a round: the machine's speed drifts between rounds for
    # every proxy alike, so the median of same-round ratios is steadier than a ratio of medians.
    def per_round(column):
        return {key: {r[2]: num(r[column]) for r in rs if num(r[column]) is not None} for key, rs in runs.items()}
    by_round = {"req/s": per_round(3), "p99": per_round(5)}

    def round_ratios(sc, px):
        base_key = (sc, "sluice") if sc in OWN_BASE else ("s1", "sluice")
        if (sc, px) == base_key:
            return ""
        parts = []
        for what, rounds in by_round.items():
            mine, base_rounds = rounds.get((sc, px), {}), rounds.get(base_key, {})
            pairs = [mine[k] / base_rounds[k] for k in sorted(mine) if base_rounds.get(k)]
            if pairs:
                parts.append(f"{what} " + " / ".join(f"{x:.2f}" for x in pairs)
                             + f" (median {statistics.median(pairs):.2f})" + sign_test(what, pairs, px))
        return "same-round ratios to Sluice's " + OWN_BASE.get(sc, "scenario 1") + ": " + "; ".join(parts) if parts else ""
    for sc in SCENARIOS:
        for px in PROXIES:
            rs = runs.get((sc, px))
            if not rs:
                continue
            good = [r for r in rs if num(r[3]) is not None]
            # "cores busy: proxy P%, load L%[, proxy CPU C us/req]" leads a round's note (run_wrk):
            # one entry per row.
            busy = [re.match(r"cores busy: proxy (\d+)%, load (\d+)%(?:, proxy CPU ([\d.]+) us/req)?(?:; )?", r[11])
                    for r in sorted(rs, key=lambda r: r[2])]
            notes = sorted({(r[11][m.end():] if m else r[11]) for r, m in zip(sorted(rs, key=lambda r: r[2]), busy)} - {""})
            if any(busy):
                notes.append("cores busy, proxy/load: " + ", ".join(f"{m[1]}/{m[2]}%" for m in busy if m))
            cpu = [float(m[3]) for m in busy if m and m[3]]
            if cpu:
                notes.append("proxy CPU per request (user + system): " + " / ".join(f"{c:.1f}" for c in cpu)
                             + f" µs (median {statistics.median(cpu):.1f})")
            if not good:
                table.append((SCENARIOS[sc], NAMES[px], None, None, None, None, "", None, "; ".join(notes)))
                continue
            rps = statistics.median(num(r[3]) for r in good)
            p50s = [num(r[4]) for r in good if num(r[4]) is not None]
            p99s = [num(r[5]) for r in good if num(r[5]) is not None]
            p50 = statistics.median(p50s) if p50s else None
            p99 = statistics.median(p99s) if p99s else None
            err = {k: sum(int(num(r[i]) or 0) for r in good)
                   for k, i in (("connect", 6), ("read", 7), ("write", 8), ("non-2xx/3xx", 9), ("timeout", 10))}
            total = sum(err.values())
            if total:
                notes.append("errors: " + ", ".join(f"{k} {v}" for k, v in err.items() if v))
            if sc == "s4":
                notes.append("errors must be 0: " + ("OK" if total == 0 else "FAIL"))
            if len(good) < len(rs):
                notes.append(f"{len(rs) - len(good)} of {len(rs)} rounds without a result")
            agg[(sc, px)] = rps
            same_round = round_ratios(sc, px)
            if same_round:
                notes.insert(0, same_round)
            table.append((SCENARIOS[sc], NAMES[px], rps, p50, p99, total, "", None, "; ".join(notes)))

    base = agg.get(("s1", "sluice"))
    lines = []
    head = ["scenario", "proxy", "req/s (median)", "p50", "p99", "errors", "RSS / instr", "ratio to Sluice", "notes"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * len(head)) + "|")
    own_base = {SCENARIOS[sc]: agg.get((sc, "sluice")) for sc in OWN_BASE}
    for sc, px, rps, p50, p99, err, extra, _, notes in table:
        row_base = own_base.get(sc, base)
        lines.append("| " + " | ".join([
            sc, px, "—" if rps is None else f"{rps:,.0f}", ms(p50), ms(p99),
            "—" if err is None else str(err), extra or "", ratio(rps, row_base), notes]) + " |")

    rss = {r[0]: r for r in rows_of(out / "rss.tsv")}
    sluice_rss = num(rss["sluice"][2]) if "sluice" in rss else None
    for px in PROXIES:
        if px not in rss:
            continue
        _, before, after, status, anon_before, anon_after = (rss[px] + [""] * 6)[:6]
        b, a = num(before), num(after)
        fields = dict(kv.split("=", 1) for kv in status.split() if "=" in kv)
        held = num(fields.get("held"))
        note = f"before {b / 1024:.1f} MiB"
        if held:
            note += f"; {(a - b) / held:.1f} KiB per held connection"
        ab, aa = num(anon_before), num(anon_after)
        if ab is not None and aa is not None:
            # VmRSS counts the binary's mapped pages too; RssAnon is heap and stacks only.
            note += f"; anonymous (heap, stacks) {ab / 1024:.1f} -> {aa / 1024:.1f} MiB"
        note += "; " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fields.items() if k != "seconds")
        if not status.startswith("done"):
            note += f" ({status.split()[0] if status else 'no status'}: the client did not finish its check)"
        if "proxy-exited" in status:
            note += "; the PROXY EXITED"
        lines.append("| " + " | ".join([
            "5 10,000 idle keep-alive conns: VmRSS after", NAMES[px], "", "", "", "",
            f"{a / 1024:.1f} MiB", ratio(a, sluice_rss), note]) + " |")

    cg = {}
    for r in rows_of(out / "callgrind.tsv"):
        r += [""] * (6 - len(r))
        kind, n1, i1, n2, i2, note = r[:6]
        if num(i1) is not None and num(i2) is not None and num(n2) != num(n1):
            cg[kind] = ((num(i2) - num(i1)) / (num(n2) - num(n1)), f"(I({n2}) − I({n1})) / {int(num(n2) - num(n1))}")
        else:
            cg[kind] = (None, note or "no result")
    for px in PROXIES:
        if px not in cg:
            continue
        value, note = cg[px]
        lines.append("| " + " | ".join([
            "instructions per request (callgrind)", NAMES[px], "", "", "", "",
            "—" if value is None else f"{value:,.0f}", ratio(value, cg.get("sluice", (None,))[0]), note]) + " |")

    table_md = "\n".join(lines)
    busy = ""
    try:
        load = float(meta.get("loadavg_start", "0").split()[0])
        if load > 0.5:
            busy = (f"**Warning:** the machine was not idle (1-minute load average {load:.2f} on "
                    f"{meta.get('nproc', '?')} cores): other processes shared the pinned cores, so "
                    "throughput and latency are noisy. Instructions per request are not affected.")
    except ValueError:
        pass
    print(table_md)
    header = [
        "# Sluice benchmark results",
        "",
        f"- date: {meta.get('date', '?')}",
        f"- command: `{meta.get('command', '?')}`",
        f"- machine: nproc {meta.get('nproc', '?')}, CPU {meta.get('cpu', '?')}",
        f"- load average before the bench started / at its end: {meta.get('loadavg_start', '?')} / {meta.get('loadavg_end', '?')}",
        f"- commit: {meta.get('commit', '?')}; binary {meta.get('sluice', '?')}",
        f"- tools: {meta.get('versions', '?')}",
        f"- settings: {meta.get('settings', '?')}",
        "",
        "req/s, p50 and p99 are medians over the rounds; errors are summed over the rounds (wrk's "
        "socket errors + non-2xx/3xx responses). \"ratio to Sluice\" divides the row's figure "
        "(req/s, VmRSS after, instructions per request) by Sluice's: for scenarios 2-4 by Sluice's "
        "scenario 1. The notes give the same ratios round by round (req/s and p99 against Sluice's "
        "scenario 1 of the same round) and their median: on a machine whose speed drifts between "
        "rounds, that is the steadier comparison. With five rounds or more they also count the rounds "
        "in which Sluice came out ahead of the row's proxy (more requests/s, a lower p99) and give the "
        "two-sided sign test's p-value for \"neither is ahead\" (`--rounds 15`: 13 of 15 gives 0.0074).",
        "",
        table_md,
        "",
    ]
    if busy:
        header[-2:-2] = [busy, ""]
        print("\n" + busy)
    (out / "results.md").write_text("\n".join(header))
    print(f"\nwritten: {out / 'results.md'}")


if __name__ == "__main__":
    main()
