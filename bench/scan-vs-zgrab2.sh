#!/usr/bin/env bash
# Benchmark (not a test): `starttls scan` against zgrab2's smtp module with
# STARTTLS on the same loopback fleet of SMTP servers, same concurrency.
# When zgrab2 cannot be installed (the module proxy may refuse it), the
# reference is `openssl s_client -starttls smtp`, one process per target,
# run C at a time by xargs -P.
#
#   bash bench/scan-vs-zgrab2.sh                 # 500 targets, concurrency 50
#   N=2000 C=100 bash bench/scan-vs-zgrab2.sh
#   ZGRAB2=/path/to/zgrab2 bash bench/scan-vs-zgrab2.sh
#   DELAYS="0 50ms" bash bench/scan-vs-zgrab2.sh  # the default: without and with latency
#
# Latency: this kernel has no sch_netem, so `tc netem` cannot add delay in a
# network namespace; instead the fleet's servers wait DELAY before each write
# (greeting, every reply, every handshake flight), which adds about DELAY to
# each exchange, as an RTT of DELAY would (the TCP connect is not delayed).
# Then the CPU cost of a STARTTLS session against a bare crypto/tls
# handshake, from the Go benchmark BenchmarkHandshake (same run).
#
# Reports, for each tool: targets, successes, wall seconds, targets/s,
# CPU seconds per target (user+sys of the tool and its children) and peak
# RSS; then the ratio of targets/s. Everything runs on 127.0.0.0/8 and
# stops at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}         # SMTP targets (good servers from package serve)
C=${C:-50}          # concurrency of both tools
ADDRS=${ADDRS:-50}  # loopback addresses the fleet spreads over
DEPTHS=${DEPTHS:-session quick}  # session: one connection, the work zgrab2 does; quick: + probes
TIMEOUT=${TIMEOUT:-10s}
DELAYS=${DELAYS:-0 50ms}

work=$(mktemp -d /tmp/scan-bench.XXXXXX)
fleet_pid=
stop_fleet() {
  exec 3>&- 2>/dev/null || true            # closing the fleet's stdin stops it
  if [ -n "$fleet_pid" ]; then
    for _ in $(seq 1 50); do kill -0 "$fleet_pid" 2>/dev/null || break; sleep 0.1; done
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

# measure NAME OK_COUNT CMD...: runs CMD under /usr/bin/time; prints a row.
rows=()
measure() {
  local name=$1 ok_count=$2; shift 2
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@"
  read -r wall user sys rss <"$work/time"
  local ok; ok=$($ok_count)
  local tps cpu
  tps=$(awk -v n="$N" -v w="$wall" 'BEGIN { printf "%.1f", n / (w > 0 ? w : 0.01) }')
  cpu=$(awk -v n="$N" -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", (u + s) * 1000 / n }')
  rows+=("$(printf '%-7s %-28s %7s %7s %8s %10s %12s %10s' "$delay" "$name" "$N" "$ok" "$wall" "$tps" "$cpu" "$((rss / 1024))")")
  echo "$name: $ok/$N ok in ${wall}s = $tps targets/s, ${cpu} CPU-ms/target, peak RSS $((rss / 1024)) MiB"
  last_tps=$tps
}

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
  if (cd "$work/zgrab2-mod" && timeout 300 go mod tidy && timeout 300 go build -o "$work/bin/zgrab2" github.com/zmap/zgrab2/cmd/zgrab2) >"$work/zgrab2-install.log" 2>&1; then
    zgrab2="$work/bin/zgrab2"
  else
    echo "zgrab2 could not be built:"; tail -3 "$work/zgrab2-install.log"
  fi
fi
ref="openssl s_client"
[ -n "$zgrab2" ] && ref="zgrab2"

ratios=()
declare -A scan_tps
for delay in $DELAYS; do
  echo "== fleet: $N SMTP servers on $ADDRS loopback addresses, delay $delay before each server write"
  rm -f "$work/fleet.in" "$work/fleet.log" "$work/scan.jsonl" "$work/zgrab2.jsonl" "$work/openssl.out"
  mkfifo "$work/fleet.in"
  "$work/scanfleet" -dir "$work" -good "$N" -addrs "$ADDRS" -delay "$delay" <"$work/fleet.in" >"$work/fleet.log" 2>&1 &
  fleet_pid=$!
  exec 3>"$work/fleet.in"
  for _ in $(seq 1 200); do grep -q '^ready' "$work/fleet.log" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready' "$work/fleet.log" || { echo "fleet did not start:"; cat "$work/fleet.log"; exit 1; }
  ca="$work/ca.pem"
  sed 's|^smtp://||' "$work/targets.txt" >"$work/hostports.txt"

  for depth in $DEPTHS; do
    echo "== starttls scan --depth $depth --concurrency $C"
    rm -f "$work/scan.jsonl"
    scan_ok() { grep -c '"status":"success"' "$work/scan.jsonl" || true; }
    measure "starttls scan ($depth)" scan_ok \
      "$work/starttls" scan --input "$work/targets.txt" --out "jsonl:$work/scan.jsonl" --depth "$depth" \
      --concurrency "$C" --per-24 0 --timeout "$TIMEOUT" --retries 0 --ca "$ca" --progress never
    scan_tps[$depth]=$last_tps
  done

  if [ -n "$zgrab2" ]; then
    echo "== zgrab2 smtp --senders $C (STARTTLS whenever advertised)"
    # zgrab2 reads "IP, DOMAIN, TAG, PORT" lines; the domain is its EHLO
    # argument and SNI (a bare EHLO is refused by RFC 5321 servers). It
    # does not verify certificates, and its TLS (zcrypto) stops at 1.2.
    awk -F: '{ print $1 ",mx.test,," $2 }' "$work/hostports.txt" >"$work/zgrab2.in"
    : >"$work/zgrab2-blocklist.conf"
    # Counted as a success: STARTTLS, a TLS handshake and QUIT answered inside it.
    zgrab_ok() { grep '"status":"success"' "$work/zgrab2.jsonl" | grep '"handshake_log"' | grep -c '"quit":' || true; }
    measure "zgrab2 smtp (STARTTLS)" zgrab_ok \
      "$zgrab2" smtp --send-quit --senders "$C" --connect-timeout "$TIMEOUT" --target-timeout "$TIMEOUT" \
      -b "$work/zgrab2-blocklist.conf" -f "$work/zgrab2.in" -o "$work/zgrab2.jsonl" -m /dev/null -l /dev/null -u /dev/null
  else
    echo "== reference: openssl s_client -starttls smtp, xargs -P $C"
    ssl_ok() { grep -c '^ok' "$work/openssl.out" || true; }
    # One s_client per target: the STARTTLS dialogue, a verified handshake, QUIT.
    measure "openssl s_client (xargs -P)" ssl_ok sh -c "xargs -P '$C' -n 1 sh -c 'if echo QUIT | timeout 10 openssl s_client -starttls smtp -connect \"\$1\" -CAfile \"$ca\" -verify_return_error -verify_ip \"\${1%:*}\" -brief >/dev/null 2>&1; then echo ok; else echo fail \$1; fi' _ <'$work/hostports.txt' >'$work/openssl.out'"
  fi
  for depth in $DEPTHS; do
    ratios+=("$(awk -v a="${scan_tps[$depth]}" -v b="$last_tps" -v r="$ref" -v d="$delay" -v k="$depth" 'BEGIN { printf "delay %s: starttls scan (%s) / %s = %.2fx targets/s", d, k, r, a / b }')")
  done
  stop_fleet
done

echo "== CPU per session: STARTTLS vs a bare crypto/tls handshake (go test -bench Handshake)"
go test -run '^$' -bench Handshake -benchtime "${HS_N:-2000}x" . >"$work/hs.txt"
grep '^Benchmark' "$work/hs.txt"

echo
echo "== results: $N SMTP targets on loopback, concurrency $C, $(nproc) cores, $(date -u +%F)"
printf '%-7s %-28s %7s %7s %8s %10s %12s %10s\n' delay tool targets ok wall_s targets/s CPU-ms/tgt RSS_MiB
for r in "${rows[@]}"; do echo "$r"; done
for r in "${ratios[@]}"; do echo "$r"; done
awk '/^BenchmarkHandshake\/tls/ { raw = $(NF-1) } /^BenchmarkHandshake\/starttls/ { name[++n] = $1; cpu[n] = $(NF-1) }
  END { for (i = 1; i <= n; i++) { sub(/^BenchmarkHandshake\//, "", name[i]); printf "CPU per session %s / bare TLS: %.2fx\n", name[i], cpu[i] / raw } }' "$work/hs.txt"
