#!/usr/bin/env bash
# Benchmark (not a test): one `starttls watch` process keeping N loopback
# SMTP targets of the scan fleet (scan/scantest) on a 5-minute interval.
# Reports the runs done, the CPU seconds (user+sys) and peak RSS of the
# watch process, CPU per run, and the CPU share a steady state needs
# (runs per second at N/interval times CPU per run).
#
#   bash bench/watch-fleet.sh                      # 10000 targets, 6 minutes, depth session
#   N=2000 DURATION=120 DEPTH=quick bash bench/watch-fleet.sh
#
# Everything runs on 127.0.0.0/8 and stops at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
INTERVAL=${INTERVAL:-5m}
DURATION=${DURATION:-360}   # seconds
DEPTH=${DEPTH:-session}
C=${C:-64}
ADDRS=${ADDRS:-200}

work=$(mktemp -d /tmp/watch-bench.XXXXXX)
fleet_pid=
cleanup() {
  exec 3>&- 2>/dev/null || true
  if [ -n "$fleet_pid" ]; then kill "$fleet_pid" 2>/dev/null || true; wait "$fleet_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building"
go build -o "$work/starttls" ./cmd/starttls
go build -o "$work/scanfleet" ./scan/scantest/scanfleet

echo "== fleet: $N good targets on $ADDRS addresses"
mkdir -p "$work/fleet"
mkfifo "$work/fleet-in"
"$work/scanfleet" -dir "$work/fleet" -good "$N" -addrs "$ADDRS" <"$work/fleet-in" >"$work/fleet.out" 2>&1 &
fleet_pid=$!
exec 3>"$work/fleet-in"
for _ in $(seq 1 600); do grep -q ready "$work/fleet.out" 2>/dev/null && break; kill -0 "$fleet_pid" 2>/dev/null || { cat "$work/fleet.out"; exit 1; }; sleep 0.2; done
grep -q ready "$work/fleet.out"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
  echo "db: $work/watch.db"
  echo "interval: $INTERVAL"
  echo "depth: $DEPTH"
  echo "concurrency: $C"
  echo "timeout: 10s"
  echo "ca: $work/fleet/ca.pem"
  echo "targets:"
  sed 's/^/  - url: /' "$work/fleet/targets.txt"
} >"$work/watch.yaml"

echo "== watch: $N targets, interval $INTERVAL, depth $DEPTH, concurrency $C, for ${DURATION}s"
/usr/bin/time -f '%e %U %S %M' -o "$work/time" \
  timeout -s TERM "$DURATION" "$work/starttls" watch --config "$work/watch.yaml" --http "127.0.0.1:$port" 2>"$work/watch.log" || true
# timeout ends watch with status 124: GNU time then writes a line before the figures.
read -r wall user sys rss < <(tail -n 1 "$work/time")
runs=$(sqlite3 "$work/watch.db" 'SELECT count(*) FROM watch_runs' 2>/dev/null || echo "?")
subjects=$(sqlite3 "$work/watch.db" 'SELECT count(*) FROM watch_subjects' 2>/dev/null || echo "?")
ok=$(sqlite3 "$work/watch.db" "SELECT count(*) FROM watch_subjects WHERE status = 'success'" 2>/dev/null || echo "?")
dbsize=$(du -h "$work/watch.db" | cut -f1)
awk -v n="$N" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" -v r="$runs" -v nsub="$subjects" -v ok="$ok" -v iv="$INTERVAL" -v db="$dbsize" 'BEGIN {
  ivs = iv; gsub(/m$/, "", ivs); ivs = ivs * 60
  printf "wall %.0f s, runs stored %d, subjects %d (%d success), db %s\n", w, r, nsub, ok, db
  printf "watch CPU %.1f s (user %.1f, sys %.1f) = %.0f%% of one core over the run; peak RSS %.0f MiB\n", u+s, u, s, (u+s)*100/w, m/1024
  cpr = (u+s)/r
  printf "CPU per run %.2f ms; steady state %d targets / %d s = %.1f runs/s -> %.0f%% of one core\n", cpr*1000, n, ivs, n/ivs, n/ivs*cpr*100
}'
grep -c 'level=WARN\|level=ERROR' "$work/watch.log" | sed 's/^/warnings+errors in the log: /'
