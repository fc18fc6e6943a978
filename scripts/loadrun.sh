#!/bin/bash
# Load run: baithak serve (release) + baithak-sim, no faults, one photo per meeting,
# each device syncing meeting by meeting (its photo, then its own push).
# usage (from the repo root): scripts/loadrun.sh BACKEND(sqlite|postgres) PHOTODIR DEVICES LABEL
# DAYS=N: offline days per device, 5 meetings each (default 4);
# AHEAD=N: the next N meetings' photos upload while one is pushed (default 0: strictly
# one meeting at a time, so a meeting's latency is its own photo + push);
# BATCHED=1: all photos then one batched push per device (the app's normal sync);
# PG_URL_PARAMS=...: appended to the PostgreSQL URL, e.g. "?sslmode=require" to measure
# with TLS (since 9403e28 the server connects to a loopback URL without one in plain;
# builds before it let libpq encrypt, and "?sslmode=disable" evens them out);
# SERVER_WRAP prefixes the server command (e.g. "perf record -g -o /tmp/perf.data"),
# which makes the RSS figure the wrapper's.
# REPORT_TO=FILE keeps the simulator's JSON report (its meeting_trace lists every
# meeting's settle time and latency).
set -u
BIN=${BIN:-$(pwd)/target/release}
backend=$1; photos=$2; n=$3; label=$4
dir=$(mktemp -d /tmp/baithak-load.XXXX)
if [ "$backend" = postgres ]; then
  db="bload_$(date +%s%N)"
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" postgres
  url="postgres://postgres@127.0.0.1:5432/$db${PG_URL_PARAMS:-}"
else
  url="sqlite://$dir/baithak.db"
fi
port=$((20000 + RANDOM % 20000))
BAITHAK_DATABASE_URL=$url BAITHAK_DATA_DIR=$dir/data BAITHAK_BIND=127.0.0.1:$port RUST_LOG=warn \
  ${SERVER_WRAP:-} $BIN/baithak serve --demo > $dir/server.out 2> $dir/server.err &
spid=$!
for _ in $(seq 1 60); do grep -q "listening on" $dir/server.out 2>/dev/null && break; sleep 0.5; done
pw=$(grep "login admin " $dir/server.out | awk '{print $NF}')
$BIN/baithak-sim --server http://127.0.0.1:$port --admin-login admin --admin-password "$pw" \
  --area LKO-PC-AC1 --incharges $n --concurrency $n --days ${DAYS:-4} --meetings-min 5 --meetings-max 5 \
  --photos-min 1 --photos-max 1 --feedback 0 --photos $photos --work-dir $dir/sim --json \
  $([ "${BATCHED:-0}" = 1 ] || echo --push-each --ahead ${AHEAD:-0}) \
  > $dir/report.json 2> $dir/sim.err
rc=$?
rss=$(grep VmHWM /proc/$spid/status | awk '{print $2}')
[ -n "${RSS_DETAIL:-}" ] && { grep -E "RssAnon|VmHWM|Threads" /proc/$spid/status;
  awk '{printf "server cpu seconds: %.1f\n", ($14+$15)/100}' /proc/$spid/stat; } >&2
e5xx=$(curl -s http://127.0.0.1:$port/metrics | awk -F'[ ]' '/class="5xx"/{print $2}')
kill $spid; wait $spid 2>/dev/null
python3 - "$dir/report.json" "$backend" "$label" "$n" "$rss" "$rc" "${e5xx:-?}" <<'PY'
import json,sys
p,backend,label,n,rss,rc,e5xx=sys.argv[1:]
try:
    r=json.load(open(p))
except Exception as e:
    print(f"{backend}\t{label}\t{n}\tFAILED rc={rc} {e}"); sys.exit(1)
lat=r.get("meeting_latency",{})
print(backend, label, n, "meetings/s=%.1f" % r.get("meetings_per_sec",0),
      "p50_ms=%.0f" % lat.get("p50_ms",0), "p99_ms=%.0f" % lat.get("p99_ms",0),
      "rss_mib=%.0f" % (int(rss or 0)/1024), "retried_errors=%d" % len(r.get("sync_errors",[])), "server_5xx="+e5xx,
      "ok=%s" % r.get("verification",{}).get("ok"), "rc="+rc, sep="\t")
print(json.dumps({k:v for k,v in r.items() if not isinstance(v,list)}), file=sys.stderr)
PY
[ $? = 0 ] || { tail -5 $dir/server.err $dir/sim.err >&2; }
if [ "$backend" = postgres ]; then psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE $db WITH (FORCE)" postgres; fi
[ -n "${REPORT_TO:-}" ] && cp $dir/report.json "$REPORT_TO"
rm -rf $dir
