#!/bin/bash
# Load run: baithak serve (release) + baithak-sim, no faults, one photo per meeting.
# usage (from the repo root): scripts/loadrun.sh BACKEND(sqlite|postgres) PHOTODIR DEVICES LABEL
set -u
BIN=${BIN:-$(pwd)/target/release}
backend=$1; photos=$2; n=$3; label=$4
dir=$(mktemp -d /tmp/baithak-load.XXXX)
if [ "$backend" = postgres ]; then
  db="bload_$(date +%s%N)"
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" postgres
  url="postgres://postgres@127.0.0.1:5432/$db"
else
  url="sqlite://$dir/baithak.db"
fi
port=$((20000 + RANDOM % 20000))
BAITHAK_DATABASE_URL=$url BAITHAK_DATA_DIR=$dir/data BAITHAK_BIND=127.0.0.1:$port RUST_LOG=warn \
  $BIN/baithak serve --demo > $dir/server.out 2> $dir/server.err &
spid=$!
for _ in $(seq 1 60); do grep -q "listening on" $dir/server.out 2>/dev/null && break; sleep 0.5; done
pw=$(grep "login admin " $dir/server.out | awk '{print $NF}')
$BIN/baithak-sim --server http://127.0.0.1:$port --admin-login admin --admin-password "$pw" \
  --area LKO-PC-AC1 --incharges $n --concurrency $n --days 4 --meetings-min 5 --meetings-max 5 \
  --photos-min 1 --photos-max 1 --feedback 0 --photos $photos --work-dir $dir/sim --json \
  > $dir/report.json 2> $dir/sim.err
rc=$?
rss=$(grep VmHWM /proc/$spid/status | awk '{print $2}')
kill $spid; wait $spid 2>/dev/null
python3 - "$dir/report.json" "$backend" "$label" "$n" "$rss" "$rc" <<'PY'
import json,sys
p,backend,label,n,rss,rc=sys.argv[1:]
try:
    r=json.load(open(p))
except Exception as e:
    print(f"{backend}\t{label}\t{n}\tFAILED rc={rc} {e}"); sys.exit()
def g(*ks):
    for k in ks:
        if k in r: return r[k]
    return None
print(backend, label, n, json.dumps({k:v for k,v in r.items() if not isinstance(v,list)}), "rss_kib="+rss, "rc="+rc, sep="\t")
PY
if [ "$backend" = postgres ]; then psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE $db WITH (FORCE)" postgres; fi
rm -rf $dir
