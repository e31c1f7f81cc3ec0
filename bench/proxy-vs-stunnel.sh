#!/usr/bin/env bash
# Benchmark `starttls proxy` against stunnel4 (and a plain Go TLS relay as
# the floor) on the same machine, the same backend and the same load, in
# one run. Loopback only. See docs/proxy.md for the numbers of a run.
#
#   bench/proxy-vs-stunnel.sh                 # from the repo root; prints markdown
#   BENCH_D=20s BENCH_C=32 bench/proxy-vs-stunnel.sh
#   BENCH_OUT=/tmp/proxy-bench.md bench/proxy-vs-stunnel.sh
#
# Needs: go, openssl, stunnel4 (Debian package stunnel4). Measures:
#   hs    full TLS handshakes per second: a session each (connect, STARTTLS
#         dialogue or implicit TLS, EHLO inside TLS, QUIT), BENCH_C clients
#   tput  relay throughput MB/s, client to backend (up) and backend to
#         client (down), on 1 connection and on BENCH_TPUT_C connections
#   mem   resident memory per idle session with BENCH_IDLE sessions open
#
# Contestants (all in front of the same plaintext backend, `loadgen backend`):
#   ours implicit    starttls proxy --mode implicit --proto smtps
#   stunnel implicit stunnel4 server mode (accept TLS, connect plaintext)
#   go relay         tls.Listen + io.Copy (loadgen relay): the floor for a Go relay
#   ours terminate   starttls proxy --mode terminate --proto smtp (STARTTLS)
#   stunnel smtp     stunnel4 server mode with protocol = smtp (STARTTLS), if it works
#   ours originate   starttls proxy --mode originate (plaintext in, STARTTLS out to "ours terminate")
#   stunnel client   stunnel4 client mode, protocol = smtp, towards the same "ours terminate"
set -euo pipefail
cd "$(dirname "$0")/.."

D=${BENCH_D:-10s}
C=${BENCH_C:-16}
BYTES=${BENCH_BYTES:-268435456}      # per connection, single-connection runs
TPUT_C=${BENCH_TPUT_C:-64}
TPUT_C_BYTES=${BENCH_TPUT_C_BYTES:-16777216}  # per connection, many-connection runs
IDLE=${BENCH_IDLE:-5000}
OUT=${BENCH_OUT:-}
STUNNEL=${STUNNEL:-$(command -v stunnel4 || command -v stunnel || true)}
[ -n "$STUNNEL" ] || { echo "stunnel4 not installed (apt-get install stunnel4)" >&2; exit 1; }

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d /tmp/proxy-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

log() { echo "# $*" >&2; }

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_port ADDR: up to 10 s
wait_port() {
  local host=${1%:*} port=${1##*:}
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; return 1
}

# wait_line FILE PREFIX: prints the value after PREFIX once it appears (10 s)
wait_line() {
  for _ in $(seq 1 100); do
    if grep -q "$2" "$1" 2>/dev/null; then grep -m1 "$2" "$1" | sed "s/.*$2//" | cut -d' ' -f1; return 0; fi
    sleep 0.1
  done
  echo "no '$2' in $1:" >&2; cat "$1" >&2; return 1
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

log "building"
go build -o "$tmp/starttls" ./cmd/starttls
go build -o "$tmp/loadgen" ./bench/loadgen
LG=$tmp/loadgen

log "PKI (ECDSA P-256, the same certificate for every contestant)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 2 \
  -extfile "$tmp/ext" -out "$tmp/server.pem" 2>/dev/null
CA=$tmp/ca.pem

"$LG" backend >"$tmp/backend.out" 2>&1 & pids+=($!)
BACKEND=$(wait_line "$tmp/backend.out" "listening=")
log "backend $BACKEND"

declare -A ADDR PID
start_ours() { # name mode proto backend
  "$tmp/starttls" proxy --mode "$2" --proto "$3" --listen 127.0.0.1:0 --backend "$4" \
    --cert "$tmp/server.pem" --key "$tmp/server.key" --log-level error --idle-timeout 10m \
    --pre-tls-timeout 60s --handshake-timeout 60s --connect-timeout 60s >"$tmp/$1.out" 2>"$tmp/$1.err" & pids+=($!)
  PID[$1]=$!
  ADDR[$1]=$(wait_line "$tmp/$1.out" "listening on ")
}
start_stunnel() { # name extra-lines...
  local name=$1; shift
  local port; port=$(freeport)
  {
    echo "foreground = yes"
    echo "pid ="
    echo "debug = 3"
    echo "output = $tmp/$name.log"
    echo "[$name]"
    echo "accept = 127.0.0.1:$port"
    for l in "$@"; do echo "$l"; done
  } >"$tmp/$name.conf"
  "$STUNNEL" "$tmp/$name.conf" >"$tmp/$name.err" 2>&1 & pids+=($!)
  PID[$name]=$!
  ADDR[$name]=127.0.0.1:$port
  wait_port "${ADDR[$name]}"
}

start_ours ours-implicit implicit smtps "$BACKEND"
start_ours ours-terminate terminate smtp "$BACKEND"
start_stunnel stunnel-implicit "connect = $BACKEND" "cert = $tmp/server.pem" "key = $tmp/server.key" "sslVersionMin = TLSv1.2"
start_stunnel stunnel-smtp "connect = $BACKEND" "cert = $tmp/server.pem" "key = $tmp/server.key" "protocol = smtp" "sslVersionMin = TLSv1.2"
"$LG" relay -backend "$BACKEND" -cert "$tmp/server.pem" -key "$tmp/server.key" >"$tmp/relay.out" 2>&1 & pids+=($!)
PID[go-relay]=$!
ADDR[go-relay]=$(wait_line "$tmp/relay.out" "listening=")
# Originate: plaintext in, STARTTLS out, towards ours-terminate (both tools the same remote).
"$tmp/starttls" proxy --mode originate --proto smtp --listen 127.0.0.1:0 --backend "${ADDR[ours-terminate]}" \
  --ca "$CA" --servername localhost --log-level error --idle-timeout 10m >"$tmp/ours-originate.out" 2>"$tmp/ours-originate.err" & pids+=($!)
PID[ours-originate]=$!
ADDR[ours-originate]=$(wait_line "$tmp/ours-originate.out" "listening on ")
start_stunnel stunnel-client "client = yes" "connect = ${ADDR[ours-terminate]}" "protocol = smtp" \
  "verifyChain = yes" "CAfile = $CA" "checkHost = localhost" "sslVersionMin = TLSv1.2"

# mode of the load per contestant
declare -A MODE=([ours-implicit]=implicit [stunnel-implicit]=implicit [go-relay]=implicit
  [ours-terminate]=starttls [stunnel-smtp]=starttls [ours-originate]=plain [stunnel-client]=plain)

# Does stunnel's server-side protocol = smtp work with a STARTTLS client?
if ! "$LG" hs -target "${ADDR[stunnel-smtp]}" -mode starttls -ca "$CA" -c 1 -d 1s >"$tmp/probe.out" 2>&1; then
  log "stunnel protocol = smtp in server mode does not serve a STARTTLS client: $(tail -1 "$tmp/probe.out")"
  STUNNEL_SMTP=0
else
  STUNNEL_SMTP=1
fi

val() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
declare -A R
run() { # key contestant args...
  local key=$1 who=$2; shift 2
  local out
  if out=$("$LG" "$@" -target "${ADDR[$who]}" -mode "${MODE[$who]}" -ca "$CA" 2>&1); then
    R[$key]=$out
  else
    R[$key]="failed: $out"
  fi
  log "$key: ${R[$key]}"
}

contestants=(ours-implicit stunnel-implicit go-relay ours-terminate)
[ "$STUNNEL_SMTP" = 1 ] && contestants+=(stunnel-smtp)
contestants+=(ours-originate stunnel-client)

for who in "${contestants[@]}"; do
  run "hs/$who" "$who" hs -c "$C" -d "$D"
done
for who in "${contestants[@]}"; do
  run "up1/$who" "$who" tput -c 1 -bytes "$BYTES" -dir up
  run "down1/$who" "$who" tput -c 1 -bytes "$BYTES" -dir down
  run "upN/$who" "$who" tput -c "$TPUT_C" -bytes "$TPUT_C_BYTES" -dir up
done
# Memory per idle session (the server process only; stunnel is one process).
for who in ours-implicit stunnel-implicit go-relay ours-terminate; do
  pid=${PID[$who]}
  before=$(rss_kb "$pid")
  rm -f "$tmp/ready"
  LOADGEN_READY=$tmp/ready "$LG" idle -target "${ADDR[$who]}" -mode "${MODE[$who]}" -ca "$CA" -n "$IDLE" -hold 4s >"$tmp/idle.out" 2>&1 &
  lg=$!
  for _ in $(seq 1 1200); do [ -e "$tmp/ready" ] && break; sleep 0.1; done
  sleep 1
  after=$(rss_kb "$pid")
  open=$(cat "$tmp/ready" 2>/dev/null || echo 0)
  wait "$lg" || true
  if [ "$open" -gt 0 ]; then
    R[mem/$who]=$(awk -v a="$after" -v b="$before" -v n="$open" 'BEGIN {printf "%.1f", (a-b)/n}')
  else
    R[mem/$who]="failed"
  fi
  log "mem/$who: open=$open rss ${before}kB -> ${after}kB"
  sleep 2
done

num() { # key field
  echo "${R[$1]:-}" | val "$2"
}
ratio() { # a b
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b+0 == 0) print "—"; else printf "%.2f×", a/b }'
}

{
  echo "### starttls proxy vs stunnel4 — $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m), loopback"
  echo
  echo "Go $(go env GOVERSION), $("$STUNNEL" -version 2>&1 | grep -m1 -o 'stunnel [0-9.]*'), $(openssl version | cut -d' ' -f1-2); ECDSA P-256, TLS 1.3 (Go clients and our proxies negotiate X25519MLKEM768, stunnel/OpenSSL 3.0 X25519), full handshakes (no resumption); clients, proxies and backend on the same machine."
  echo "Command: \`BENCH_D=$D BENCH_C=$C BENCH_BYTES=$BYTES BENCH_TPUT_C=$TPUT_C BENCH_TPUT_C_BYTES=$TPUT_C_BYTES BENCH_IDLE=$IDLE bench/proxy-vs-stunnel.sh\`"
  echo
  echo "| contestant | handshakes/s ($C clients) | MB/s up, 1 conn | MB/s down, 1 conn | MB/s up, $TPUT_C conns | kB per idle session ($IDLE) |"
  echo "|---|---:|---:|---:|---:|---:|"
  for who in "${contestants[@]}"; do
    echo "| $who | $(num "hs/$who" per_second) | $(num "up1/$who" mb_per_second) | $(num "down1/$who" mb_per_second) | $(num "upN/$who" mb_per_second) | ${R[mem/$who]:-—} |"
  done
  echo
  echo "Ratios (ours / reference; above 1 is better for ours, except memory where below 1 is better):"
  echo
  echo "| pair | handshakes/s | MB/s up 1 | MB/s down 1 | MB/s up $TPUT_C | memory |"
  echo "|---|---:|---:|---:|---:|---:|"
  pair() {
    echo "| $1 / $2 | $(ratio "$(num "hs/$1" per_second)" "$(num "hs/$2" per_second)") | $(ratio "$(num "up1/$1" mb_per_second)" "$(num "up1/$2" mb_per_second)") | $(ratio "$(num "down1/$1" mb_per_second)" "$(num "down1/$2" mb_per_second)") | $(ratio "$(num "upN/$1" mb_per_second)" "$(num "upN/$2" mb_per_second)") | $(ratio "${R[mem/$1]:-}" "${R[mem/$2]:-}") |"
  }
  pair ours-implicit stunnel-implicit
  pair ours-implicit go-relay
  if [ "$STUNNEL_SMTP" = 1 ]; then pair ours-terminate stunnel-smtp; else pair ours-terminate stunnel-implicit; fi
  pair ours-originate stunnel-client
  echo
  for k in "${!R[@]}"; do case "${R[$k]}" in failed*) echo "- $k: ${R[$k]}";; esac; done
} | tee ${OUT:+"$OUT"}
