#!/usr/bin/env python3
"""Aggregates the uprobe events of bench/arc-census.sh. Python 3 standard library only.

    arc_census.py pool-offsets BIN BASE EVENTS
        the file offsets of runtime-allocated metadata seen as a type (one hex number a line),
        to be named by swift_getTypeName in the running proxy
    arc_census.py report BIN BASE EVENTS REQUESTS TOP POOL NAMES
        calls per request: the totals, by type, and by type and calling function

EVENTS is `perf script -F event,trace,ip,sym` output: one line per retain or release with
`isa=` (the object's type word) and `rc=` (its reference-count word), then the call chain,
innermost first (the runtime function, then its caller). BASE is the hex address where BIN's
first segment is mapped.

A call is counted as `atomic` when the object's count is a real one (the runtime changes it
with a locked instruction), `immortal` when the count's low 32 bits are all ones (an immortal
object: static metadata-like objects, empty collections, and what Sluice marks immortal; the
runtime returns at once), and `nil` for a nil optional.
"""
import bisect
import collections
import re
import subprocess
import sys

POOL_SYMBOL = "_ZL21InitialAllocationPool"


class Symbols:
    """The binary's symbols by file offset (`nm -n`), to name an address inside the binary."""

    def __init__(self, binary):
        self.starts, self.names = [], []
        out = subprocess.run(["nm", "-n", binary], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3:
                self.starts.append(int(parts[0], 16))
                self.names.append(parts[2])

    def type_of(self, isa, base):
        """A type's name, `pool@OFFSET` for metadata in the runtime's pool, or nil/heap."""
        if isa == 0:
            return "nil"
        offset = isa - base
        if not self.starts or not 0 <= offset < self.starts[-1]:
            return "heap"
        name = self.names[bisect.bisect_right(self.starts, offset) - 1]
        return "pool@%x" % offset if name == POOL_SYMBOL else name


def events(path):
    """(kind, isa, cost, caller) for each event: kind R or X, cost atomic/immortal/nil, caller
    the frame after the runtime's."""
    kind, isa, cost, frames = None, 0, "nil", []
    with open(path, errors="replace") as lines:
        for line in lines:
            if line.lstrip().startswith("probe"):
                if kind:
                    yield kind, isa, cost, frames[1] if len(frames) > 1 else "?"
                kind = "R" if "swift_retain" in line.split()[0] else "X"
                found = re.search(r"isa=(\d+)", line)
                isa = int(found.group(1)) if found else 0
                found = re.search(r"rc=(\d+)", line)
                count = int(found.group(1)) if found else 0
                cost = "nil" if isa == 0 else "immortal" if count & 0xFFFF_FFFF == 0xFFFF_FFFF else "atomic"
                frames = []
            elif line.strip():
                parts = line.split(None, 1)
                if len(parts) == 2:
                    frames.append(re.sub(r"\+0x[0-9a-f]+$", "", parts[1].strip()))
    if kind:
        yield kind, isa, cost, frames[1] if len(frames) > 1 else "?"


def demangled(names):
    if not names:
        return {}
    out = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(names),
                         capture_output=True, text=True).stdout.split("\n")
    return dict(zip(names, out))


def main(argv):
    command, binary, base = argv[1], argv[2], int(argv[3], 16)
    symbols = Symbols(binary)
    counted = collections.Counter()
    for kind, isa, cost, caller in events(argv[4]):
        counted[(symbols.type_of(isa, base), kind, cost, caller)] += 1
    if command == "pool-offsets":
        for offset in sorted({t[5:] for t, _, _, _ in counted if t.startswith("pool@")}):
            print(offset)
        return
    requests, top = float(argv[5]), int(argv[6])
    pool_names = {}
    try:
        offsets = open(argv[7]).read().split()
        printed = [re.sub(r'^\$\d+ = 0x[0-9a-f]+ "(.*)"$', r"\1", l.strip()) for l in open(argv[8])]
        pool_names = {"pool@" + o: n for o, n in zip(offsets, printed)}
    except (OSError, IndexError):
        pass
    names = demangled(sorted({t for t, _, _, _ in counted} | {c for _, _, _, c in counted}))

    def type_name(t):
        name = pool_names.get(t) or names.get(t, t)
        return re.sub(r"^(full )?type metadata for ", "", name)

    by_type = collections.defaultdict(collections.Counter)
    totals = collections.Counter()
    for (t, kind, cost, _), n in counted.items():
        by_type[type_name(t)][cost] += n
        totals[kind] += n
        totals[cost] += n
    print(f"per request: {totals['R'] / requests:.1f} retains, {totals['X'] / requests:.1f} releases;"
          f" {totals['atomic'] / requests:.1f} atomic, {totals['immortal'] / requests:.1f} on immortal"
          f" objects, {totals['nil'] / requests:.1f} on nil")
    print("\nby type (calls per request: atomic, immortal or nil):")
    ranked = sorted(by_type.items(), key=lambda item: -sum(item[1].values()))
    for name, costs in ranked[:top]:
        print(f"  {costs['atomic'] / requests:6.2f} {(costs['immortal'] + costs['nil']) / requests:6.2f}  {name[:100]}")
    print("\natomic calls by type and caller (R retain, X release; per request):")
    rows = sorted(((n, type_name(t), kind, names.get(c, c)) for (t, kind, cost, c), n in counted.items()
                   if cost == "atomic"), reverse=True)
    for n, name, kind, caller in rows[:top * 2]:
        print(f"  {n / requests:6.2f} {kind} {name[:44]:44} <- {caller[:90]}")


if __name__ == "__main__":
    main(sys.argv)
