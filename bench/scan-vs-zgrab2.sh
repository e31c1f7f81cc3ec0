#!/usr/bin/env bash
# Benchmark (not a test): `starttls scan --depth session` against zgrab2
# v1.0's smtp module (banner, EHLO, STARTTLS, handshake, QUIT) on the same
# loopback fleet of SMTP servers, at the same concurrency, taking turns,
# at each round-trip time given.
#
#   bash bench/scan-vs-zgrab2.sh                    # RTT 0, 50 ms, 200 ms; 10,000 targets, C=500
#   bash bench/scan-vs-zgrab2.sh 50ms               # one RTT
#   N=2000 C=100 ROUNDS=3 bash bench/scan-vs-zgrab2.sh 0 200ms
#   PROFILE=1 bash bench/scan-vs-zgrab2.sh 50ms     # + CPU/block/mutex/alloc profiles of the scan, and timelines
#   ZGRAB2=/path/to/zgrab2 bash bench/scan-vs-zgrab2.sh
#
# Latency: this kernel has no sch_netem (CONFIG_NET_SCH_NETEM is not set,
# `tc qdisc add dev lo root netem` answers "Specified qdisc kind is
# unknown", in a namespace of our own too), so the fleet emulates the RTT
# with a delay line in front of each server (scan/scantest/delay.go): the
# client's bytes reach the server RTT after they were sent and the
# greeting leaves RTT after the accept. Pipelined bytes share one RTT, as
# on a real path; only the TCP handshake's own RTT is missing, for both.
#
# Each run: targets, successes, wall seconds, targets/s, CPU ms per target
# (user+sys of the tool) and peak RSS, with the load average before it;
# then per RTT the ratios scan / zgrab2 (sums over the rounds). The fleet
# has its own process, so its CPU is not counted, but it shares the cores.
# Everything runs on 127.0.0.0/8 and stops at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}       # SMTP targets (good servers from package serve)
C=${C:-500}         # concurrency of both tools
ADDRS=${ADDRS:-50}  # loopback addresses the fleet spreads over
ROUNDS=${ROUNDS:-1} # turns per RTT; the first tool alternates
TIMEOUT=${TIMEOUT:-10s}
RTTS=${*:-${RTTS:-0 50ms 200ms}}
[ "$(ulimit -n)" -lt $((N + 4 * C + 1000)) ] && ulimit -n $((N + 4 * C + 1000)) 2>/dev/null || true

work=$(mktemp -d /tmp/scan-bench.XXXXXX)
fleet_pid=
stop_fleet() {
  exec 3>&- 2>/dev/null || true            # closing the fleet's stdin stops it
  if [ -n "$fleet_pid" ]; then
    for _ in $(seq 1 100); do kill -0 "$fleet_pid" 2>/dev/null || break; sleep 0.1; done
    kill "$fleet_pid" 2>/dev/null || true
    wait "$fleet_pid" 2>/dev/null || true
  fi
  fleet_pid=
}
cleanup() { stop_fleet; rm -rf "$work"; }
trap cleanup EXIT

echo "== building"
go build -o "$work/starttls" ./cmd/starttls
go build -o "$work/scanfleet" ./scan/scantest/scanfleet

zgrab2=${ZGRAB2:-}
if [ -z "$zgrab2" ] && command -v zgrab2 >/dev/null; then zgrab2=$(command -v zgrab2); fi
if [ -z "$zgrab2" ]; then
  # The module proxy serves exact zgrab2 versions but refuses its version
  # list, so `go install ...@latest` (and even @version, which looks up
  # deprecations in that list) fails; a throwaway module that requires the
  # pinned version builds it.
  zv=${ZGRAB2_VERSION:-v1.0.0}
  echo "== building zgrab2 $zv from the Go module proxy"
  mkdir -p "$work/zgrab2-mod"
  printf 'module zgrab2build\n\ngo 1.26\n\nrequire github.com/zmap/zgrab2 %s\n' "$zv" >"$work/zgrab2-mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/zmap/zgrab2/cmd/zgrab2"\n' >"$work/zgrab2-mod/tools.go"
  if ! (cd "$work/zgrab2-mod" && timeout 600 go mod tidy && timeout 600 go build -o "$work/bin/zgrab2" github.com/zmap/zgrab2/cmd/zgrab2) >"$work/zgrab2-install.log" 2>&1; then
    echo "zgrab2 could not be built:"; tail -3 "$work/zgrab2-install.log"; exit 1
  fi
  zgrab2="$work/bin/zgrab2"
fi

rows=()
declare -A tot_n tot_wall tot_cpu max_rss
# measure RTT TOOL OK_COUNT CMD...: runs CMD under /usr/bin/time; adds a row.
measure() {
  local rtt=$1 name=$2 ok_count=$3; shift 3
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@"
  read -r wall user sys rss <"$work/time"
  local ok; ok=$($ok_count)
  local tps cpu
  tps=$(awk -v n="$N" -v w="$wall" 'BEGIN { printf "%.1f", n / (w > 0 ? w : 0.01) }')
  cpu=$(awk -v n="$N" -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", (u + s) * 1000 / n }')
  rows+=("$(printf '%-6s %-22s %7s %7s %8s %10s %11s %8s %6s' "$rtt" "$name" "$N" "$ok" "$wall" "$tps" "$cpu" "$((rss / 1024))" "$load")")
  echo "$name: $ok/$N ok in ${wall}s = $tps targets/s, $cpu CPU-ms/target, peak RSS $((rss / 1024)) MiB (load $load)"
  local k="$rtt/$name"
  tot_n[$k]=$(( ${tot_n[$k]:-0} + N ))
  tot_wall[$k]=$(awk -v a="${tot_wall[$k]:-0}" -v b="$wall" 'BEGIN { print a + b }')
  tot_cpu[$k]=$(awk -v a="${tot_cpu[$k]:-0}" -v u="$user" -v s="$sys" 'BEGIN { print a + u + s }')
  [ "${max_rss[$k]:-0}" -lt "$rss" ] && max_rss[$k]=$rss
  return 0
}

run_scan() {
  rm -f "$work/scan.jsonl"
  scan_ok() { grep -c '"status":"success"' "$work/scan.jsonl" || true; }
  measure "$1" scan scan_ok \
    "$work/starttls" scan --input "$work/targets.txt" --out "jsonl:$work/scan.jsonl" --depth session \
    --concurrency "$C" --per-24 0 --timeout "$TIMEOUT" --retries 0 --ca "$work/ca.pem" --progress never
}
run_zgrab2() {
  rm -f "$work/zgrab2.jsonl"
  # Counted as a success: STARTTLS, a TLS handshake and QUIT answered inside it.
  zgrab_ok() { grep '"status":"success"' "$work/zgrab2.jsonl" | grep '"handshake_log"' | grep -c '"quit":' || true; }
  measure "$1" zgrab2 zgrab_ok \
    "$zgrab2" smtp --send-quit --senders "$C" --connect-timeout "$TIMEOUT" --target-timeout "$TIMEOUT" \
    -b "$work/zgrab2-blocklist.conf" -f "$work/zgrab2.in" -o "$work/zgrab2.jsonl" -m /dev/null -l /dev/null -u /dev/null
}

for rtt in $RTTS; do
  delay=$rtt; [ "$delay" = 0 ] && delay=0s
  echo "== fleet: $N SMTP servers on $ADDRS loopback addresses, RTT $rtt"
  rm -f "$work/fleet.in" "$work/fleet.log" "$work/trace.txt"
  mkfifo "$work/fleet.in"
  trace=(); [ -n "${PROFILE:-}" ] && trace=(-trace "$work/trace.txt" -trace-conns 2)
  "$work/scanfleet" -dir "$work" -good "$N" -addrs "$ADDRS" -delay "$delay" "${trace[@]}" <"$work/fleet.in" >"$work/fleet.log" 2>&1 &
  fleet_pid=$!
  exec 3>"$work/fleet.in"
  for _ in $(seq 1 600); do grep -q '^ready' "$work/fleet.log" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready' "$work/fleet.log" || { echo "fleet did not start:"; cat "$work/fleet.log"; exit 1; }
  # zgrab2 reads "IP, DOMAIN, TAG, PORT" lines; the domain is its EHLO
  # argument and SNI (a bare EHLO is refused by RFC 5321 servers). It
  # does not verify certificates.
  sed 's|^smtp://||' "$work/targets.txt" | awk -F: '{ print $1 ",mx.test,," $2 }' >"$work/zgrab2.in"
  : >"$work/zgrab2-blocklist.conf"

  if [ -n "${PROFILE:-}" ]; then
    echo "== timelines (server side, first connection of each tool)"
    head -1 "$work/targets.txt" >"$work/one.txt"
    "$work/starttls" scan --input "$work/one.txt" --out "jsonl:$work/one.jsonl" --depth session --per-24 0 --retries 0 --ca "$work/ca.pem" --progress never 2>/dev/null
    head -2 "$work/zgrab2.in" | tail -1 >"$work/zgrab2-one.in"
    "$zgrab2" smtp --send-quit -b "$work/zgrab2-blocklist.conf" -f "$work/zgrab2-one.in" -o /dev/null -m /dev/null -l /dev/null -u /dev/null 2>/dev/null
    sleep 1; cat "$work/trace.txt" 2>/dev/null || true
    prof=${PROFILE_DIR:-/tmp/scan-profile}-$rtt; mkdir -p "$prof"
    echo "== profiling the scan (go test -bench ScanTargets): $prof"
    SCAN_BENCH_TARGETS="$work/targets.txt" SCAN_BENCH_CA="$work/ca.pem" SCAN_BENCH_C="$C" \
      go test ./scan -run '^$' -bench ScanTargets -benchtime 1x -o "$prof/scan.test" \
      -cpuprofile "$prof/cpu.out" -blockprofile "$prof/block.out" -mutexprofile "$prof/mutex.out" -memprofile "$prof/mem.out" | grep -E '^Benchmark|ok' || true
    go tool pprof -top -nodecount 25 "$prof/scan.test" "$prof/cpu.out" 2>/dev/null | head -32 || true
  fi

  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then run_scan "$rtt"; run_zgrab2 "$rtt"; else run_zgrab2 "$rtt"; run_scan "$rtt"; fi
  done
  stop_fleet
done

echo
echo "== results: $N SMTP targets on loopback, concurrency $C, $ROUNDS round(s), $(nproc) cores, $(date -u +%F)"
printf '%-6s %-22s %7s %7s %8s %10s %11s %8s %6s\n' rtt tool targets ok wall_s targets/s CPU-ms/tgt RSS_MiB load
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "== ratios scan / zgrab2 (goal: targets/s >= 1.5, CPU per target <= 0.7)"
printf '%-6s %10s %12s %8s\n' rtt targets/s CPU/target RSS
for rtt in $RTTS; do
  awk -v sn="${tot_n[$rtt/scan]}" -v sw="${tot_wall[$rtt/scan]}" -v sc="${tot_cpu[$rtt/scan]}" -v sr="${max_rss[$rtt/scan]}" \
      -v zn="${tot_n[$rtt/zgrab2]}" -v zw="${tot_wall[$rtt/zgrab2]}" -v zc="${tot_cpu[$rtt/zgrab2]}" -v zr="${max_rss[$rtt/zgrab2]}" -v r="$rtt" \
      'BEGIN { printf "%-6s %9.2fx %11.2fx %7.2fx\n", r, (sn / sw) / (zn / zw), (sc / sn) / (zc / zn), sr / zr }'
done
