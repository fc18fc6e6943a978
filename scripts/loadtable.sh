#!/bin/bash
# The load-run table of BENCHMARKS.md: every backend x photo size x device count,
# REPS times each (interleaved, so a noisy minute hits one run of each, not all runs
# of one), then the median of each figure per configuration.
# Each device has 4 offline days of 5 meetings, except a lone device: 40 days
# (DAYS_ONE), so its rate is not a quarter-second sample.
# usage (from the repo root, after `cargo build --release -p baithak -p baithak-client`):
#   REPS=3 scripts/loadtable.sh SMALL_PHOTO_DIR BIG_PHOTO_DIR [BACKENDS...]
# Before/after: AB="A_BIN_DIR B_BIN_DIR" runs each configuration with build A, then
# build B, back to back (each dir holds a release `baithak` and `baithak-sim`: copy
# them aside after building each commit), and prints both builds' medians and the
# median of the per-pair rate ratios B/A. On a shared machine whose speed drifts,
# that ratio is the figure to trust for "did it help".
# SIZES="big" (or "small") runs one photo size only; DEVICES="1 32" a subset of counts.
set -u
small=$1; big=$2; shift 2
backends=${*:-sqlite postgres}
read -r -a builds <<< "${AB:-}"
out=$(mktemp /tmp/baithak-loadtable.XXXX)
for rep in $(seq 1 "${REPS:-3}"); do
  for b in $backends; do for p in ${SIZES:-small big}; do for n in ${DEVICES:-1 8 32}; do
    dir=$small; [ "$p" = big ] && dir=$big
    # A lone device's 20 meetings take a quarter of a second, which start-up effects
    # dominate; its row is measured over 200 (40 offline days).
    days=4; [ "$n" = 1 ] && days=${DAYS_ONE:-40}
    export DAYS=$days
    if [ ${#builds[@]} -eq 2 ]; then
      BIN=${builds[0]} scripts/loadrun.sh "$b" "$dir" "$n" "$p-A" 2>/dev/null | tee -a "$out"
      BIN=${builds[1]} scripts/loadrun.sh "$b" "$dir" "$n" "$p-B" 2>/dev/null | tee -a "$out"
    else
      scripts/loadrun.sh "$b" "$dir" "$n" "$p" 2>/dev/null | tee -a "$out"
    fi
  done; done; done
done
python3 - "$out" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 4 or "FAILED" in line:
        continue
    kv = dict(x.split("=", 1) for x in f[3:] if "=" in x)
    runs[(f[0], f[1], int(f[2]))].append(kv)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
order = lambda k: (k[0] != "sqlite", not k[1].startswith("small"), k[2], k[1])
if any(label.endswith("-B") for _, label, _ in runs):
    print("| backend | photo | devices | runs | A meetings/s | B meetings/s | B/A (median of pairs) | A p99 ms | B p99 ms | B p50 ms | B peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (b, label, n) in sorted((k for k in runs if k[1].endswith("-A")), key=order):
        p = label[:-2]
        A, B = runs[(b, label, n)], runs.get((b, p + "-B", n), [])
        if not B:
            continue
        ratio = statistics.median(float(y["meetings/s"]) / float(x["meetings/s"]) for x, y in zip(A, B))
        print(f"| {b} | {p} | {n} | {len(A)}+{len(B)} | {med(A, 'meetings/s'):.1f} | {med(B, 'meetings/s'):.1f} "
              f"| x{ratio:.2f} | {med(A, 'p99_ms'):.0f} | {med(B, 'p99_ms'):.0f} | {med(B, 'p50_ms'):.0f} | {med(B, 'rss_mib'):.0f} |")
else:
    print("| backend | photo | devices | runs | meetings/s | p50 ms | p99 ms | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (b, p, n), rs in sorted(runs.items(), key=lambda kv: order(kv[0])):
        print(f"| {b} | {p} | {n} | {len(rs)} | {med(rs, 'meetings/s'):.1f} | {med(rs, 'p50_ms'):.0f} | {med(rs, 'p99_ms'):.0f} | {med(rs, 'rss_mib'):.0f} |")
PY
