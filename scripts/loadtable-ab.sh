#!/bin/bash
# Before/after load table: the configurations of scripts/loadtable.sh, each run with
# build A then build B back to back, REPS times, so both builds see the same noisy
# minutes; prints medians per build and the median of the per-pair rate ratios B/A.
# On a shared machine whose speed drifts this is the table to trust for "did it help".
# usage (from the repo root):
#   REPS=3 scripts/loadtable-ab.sh A_BIN_DIR B_BIN_DIR SMALL_PHOTO_DIR BIG_PHOTO_DIR [BACKENDS...]
# where each BIN_DIR holds a release `baithak` and `baithak-sim` (copy target/release/
# baithak{,-sim} aside after building each commit).
set -u
a_bin=$1; b_bin=$2; small=$3; big=$4; shift 4
backends=${*:-sqlite postgres}
out=$(mktemp /tmp/baithak-loadtable-ab.XXXX)
for rep in $(seq 1 "${REPS:-3}"); do
  for b in $backends; do for p in small big; do for n in 1 8 32; do
    dir=$small; [ "$p" = big ] && dir=$big
    BIN=$a_bin scripts/loadrun.sh "$b" "$dir" "$n" "$p-A" 2>/dev/null | tee -a "$out"
    BIN=$b_bin scripts/loadrun.sh "$b" "$dir" "$n" "$p-B" 2>/dev/null | tee -a "$out"
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
print("| backend | photo | devices | runs | A meetings/s | B meetings/s | B/A (median of pairs) | A p99 ms | B p99 ms | B p50 ms | B peak RSS MiB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for b in ("sqlite", "postgres"):
    for p in ("small", "big"):
        for n in (1, 8, 32):
            A, B = runs.get((b, p + "-A", n), []), runs.get((b, p + "-B", n), [])
            if not A or not B:
                continue
            med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
            ratio = statistics.median(float(y["meetings/s"]) / float(x["meetings/s"]) for x, y in zip(A, B))
            print(f"| {b} | {p} | {n} | {len(A)}+{len(B)} | {med(A, 'meetings/s'):.1f} | {med(B, 'meetings/s'):.1f} "
                  f"| x{ratio:.2f} | {med(A, 'p99_ms'):.0f} | {med(B, 'p99_ms'):.0f} | {med(B, 'p50_ms'):.0f} | {med(B, 'rss_mib'):.0f} |")
PY
