#!/bin/bash
# The load-run table of BENCHMARKS.md: every backend x photo size x device count,
# REPS times each (interleaved, so a noisy minute hits one run of each, not all runs
# of one), then the median of each figure per configuration.
# usage (from the repo root, after `cargo build --release -p baithak -p baithak-client`):
#   REPS=3 scripts/loadtable.sh SMALL_PHOTO_DIR BIG_PHOTO_DIR [BACKENDS...]
set -u
small=$1; big=$2; shift 2
backends=${*:-sqlite postgres}
out=$(mktemp /tmp/baithak-loadtable.XXXX)
for rep in $(seq 1 "${REPS:-3}"); do
  for b in $backends; do for p in small big; do for n in 1 8 32; do
    dir=$small; [ "$p" = big ] && dir=$big
    scripts/loadrun.sh "$b" "$dir" "$n" "$p" 2>/dev/null | tee -a "$out"
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
print("| backend | photo | devices | runs | meetings/s | p50 ms | p99 ms | peak RSS MiB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (b, p, n), rs in sorted(runs.items(), key=lambda k: (k[0][0] != "sqlite", k[0][1] != "small", k[0][2])):
    med = lambda k: statistics.median(float(r[k]) for r in rs)
    print(f"| {b} | {p} | {n} | {len(rs)} | {med('meetings/s'):.1f} | {med('p50_ms'):.0f} | {med('p99_ms'):.0f} | {med('rss_mib'):.0f} |")
PY
