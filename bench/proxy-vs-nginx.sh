#!/usr/bin/env bash
# Benchmark `starttls proxy` against nginx's mail proxy (ngx_mail_module) on
# the same machine, the same plaintext SMTP backend and the same load, in one
# run. Loopback only. See "Against nginx's mail proxy" in docs/proxy.md.
#
#   bench/proxy-vs-nginx.sh                   # from the repo root; prints markdown
#   BENCH_D=20s BENCH_C=32 bench/proxy-vs-nginx.sh
#   BENCH_OUT=/tmp/nginx-bench.md bench/proxy-vs-nginx.sh
#
# Needs: go, openssl, nginx with the mail module (Debian: nginx + libnginx-mod-mail).
#
# Backend: `loadgen sink` (bench/loadgen), a
# plaintext SMTP sink whose DATA reply is "250 2.0.0 queued as bench-N".
# Contestants, all in front of that sink:
#   ours-starttls   starttls proxy --mode terminate --proto smtp
#   nginx-starttls  nginx mail server: starttls only; smtp_auth none; xclient off
#   ours-implicit   starttls proxy --mode implicit --proto smtps
#   nginx-implicit  nginx mail server: listen ... ssl
# nginx picks the backend per session through auth_http; the auth service is
# an http server block of the same nginx (add_header Auth-Status/Server/Port):
# the cheapest auth_http there is. BENCH_AUTH=go uses `loadgen auth`, a
# separate Go process, instead.
#
# Load (BENCH_C clients for BENCH_D each, one session after the other):
#   mail  `loadgen mail`: TCP, (greeting, EHLO, STARTTLS,) full TLS 1.3
#         handshake (X25519 for both), EHLO, MAIL, RCPT, DATA with a
#         BENCH_SIZE-byte message, QUIT. Counted only if the DATA reply comes
#         from the sink. nginx only reaches the backend at RCPT, so this is the
#         load that makes both proxies do the same work.
#   hs    `loadgen hs` (as in proxy-vs-stunnel.sh): TCP, (STARTTLS,) TLS, EHLO,
#         QUIT. nginx answers all of it itself and never contacts the backend
#         or auth_http; ours connects to the backend on every session. Go's
#         default groups: X25519MLKEM768 against ours, X25519 against nginx.
set -euo pipefail
cd "$(dirname "$0")/.."

D=${BENCH_D:-10s}
C=${BENCH_C:-16}
SIZE=${BENCH_SIZE:-1024}
OUT=${BENCH_OUT:-}
AUTH=${BENCH_AUTH:-nginx}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
MAILMOD=${NGINX_MAIL_MODULE:-/usr/lib/nginx/modules/ngx_mail_module.so}
[ -x "$NGINX" ] || { echo "nginx not installed (apt-get install nginx libnginx-mod-mail)" >&2; exit 1; }
[ -f "$MAILMOD" ] || { echo "$MAILMOD missing (apt-get install libnginx-mod-mail)" >&2; exit 1; }
secs=${D%s}

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d /tmp/nginx-bench.XXXXXX)
chmod 755 "$tmp"   # nginx workers may run as another user
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true; done
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "# $*" >&2; }

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_port() { # ADDR: up to 10 s
  local host=${1%:*} port=${1##*:}
  for _ in $(seq 1 100); do
    if timeout 1 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; return 1
}

wait_line() { # FILE PREFIX: the value after PREFIX once it appears (10 s)
  for _ in $(seq 1 100); do
    if grep -q "$2" "$1" 2>/dev/null; then grep -m1 "$2" "$1" | sed "s/.*$2//" | cut -d' ' -f1; return 0; fi
    sleep 0.1
  done
  echo "no '$2' in $1:" >&2; cat "$1" >&2; return 1
}

log "building"
timeout 600 go build -o "$tmp/starttls" ./cmd/starttls
timeout 600 go build -o "$tmp/loadgen" ./bench/loadgen
LG=$tmp/loadgen

log "PKI (ECDSA P-256, the same certificate for both)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 2 \
  -extfile "$tmp/ext" -out "$tmp/server.pem" 2>/dev/null
chmod 644 "$tmp/server.key"
CA=$tmp/ca.pem

"$LG" sink >"$tmp/sink.out" 2>&1 & pids+=($!)
BACKEND=$(wait_line "$tmp/sink.out" "listening=")
BPORT=${BACKEND##*:}
log "backend $BACKEND"

declare -A ADDR PID
start_ours() { # name mode proto
  "$tmp/starttls" proxy --mode "$2" --proto "$3" --listen 127.0.0.1:0 --backend "$BACKEND" \
    --cert "$tmp/server.pem" --key "$tmp/server.key" --log-level error --idle-timeout 10m \
    --pre-tls-timeout 60s --handshake-timeout 60s --connect-timeout 60s >"$tmp/$1.out" 2>"$tmp/$1.err" & pids+=($!)
  PID[$1]=$!
  ADDR[$1]=$(wait_line "$tmp/$1.out" "listening on ")
}
start_ours ours-starttls terminate smtp
start_ours ours-implicit implicit smtps

# nginx: its own prefix, config, pid, logs and temp paths in $tmp.
NS=$(freeport) NI=$(freeport)
if [ "$AUTH" = go ]; then
  "$LG" auth -server 127.0.0.1 -port "$BPORT" >"$tmp/auth.out" 2>&1 & pids+=($!)
  AUTHADDR=$(wait_line "$tmp/auth.out" "listening=")
  AUTHBLOCK=""
else
  AUTHADDR=127.0.0.1:$(freeport)
  AUTHBLOCK="
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen $AUTHADDR;
        location = /auth {
            add_header Auth-Status OK;
            add_header Auth-Server 127.0.0.1;
            add_header Auth-Port $BPORT;
            return 204;
        }
    }
}"
fi
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<CONF
load_module $MAILMOD;
worker_processes 2;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 16384; }
$AUTHBLOCK
mail {
    server_name localhost;
    auth_http $AUTHADDR/auth;
    proxy on;
    xclient off;
    smtp_auth none;
    ssl_certificate $tmp/server.pem;
    ssl_certificate_key $tmp/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:$NS;
        protocol smtp;
        starttls only;
    }
    server {
        listen 127.0.0.1:$NI ssl;
        protocol smtp;
    }
}
CONF
timeout 10 "$NGINX" -t -p "$tmp/nginx/" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/t.err" ||
  { cat "$tmp/nginx/t.err" >&2; exit 1; }
"$NGINX" -p "$tmp/nginx/" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx/out" 2>&1 & pids+=($!)
PID[nginx]=$!
ADDR[nginx-starttls]=127.0.0.1:$NS
ADDR[nginx-implicit]=127.0.0.1:$NI
wait_port "${ADDR[nginx-starttls]}"
wait_port "${ADDR[nginx-implicit]}"
log "nginx $("$NGINX" -v 2>&1 | sed 's/.*: //') pid ${PID[nginx]} auth_http $AUTHADDR ($AUTH)"

declare -A MODE=([ours-starttls]=starttls [nginx-starttls]=starttls [ours-implicit]=implicit [nginx-implicit]=implicit)
contestants=(ours-starttls nginx-starttls ours-implicit nginx-implicit)

# What a STARTTLS client sees from each (before and after TLS).
declare -A CAPS
for who in ours-starttls nginx-starttls; do
  CAPS[$who]=$(timeout 30 "$LG" caps -target "${ADDR[$who]}" -ca "$CA" 2>&1 || true)
  log "caps $who:"; echo "${CAPS[$who]}" | sed 's/^/#   /' >&2
done

val() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
declare -A R R1
run() { # key tool args...
  local key=$1 tool=$2; shift 2
  local out
  if out=$(timeout $((secs + 60)) "$tool" "$@" 2>&1); then R[$key]=$out; else R[$key]="failed: $out"; fi
  log "$key: ${R[$key]}"
}
for round in 1 2; do   # alternate, twice: the second round is reported
  for who in "${contestants[@]}"; do
    run "mail/$who" "$LG" mail -target "${ADDR[$who]}" -mode "${MODE[$who]}" -ca "$CA" -c "$C" -d "$D" -size "$SIZE"
  done
  for who in "${contestants[@]}"; do
    run "hs/$who" "$LG" hs -target "${ADDR[$who]}" -mode "${MODE[$who]}" -ca "$CA" -c "$C" -d "$D"
  done
  [ "${BENCH_ROUNDS:-2}" = "$round" ] && break
  for k in "${!R[@]}"; do R1[$k]=${R[$k]}; done
done

num() { echo "${R[$1]:-}" | val "$2"; }
num1() { echo "${R1[$1]:-}" | val "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b+0 == 0) print "—"; else printf "%.2f×", a/b }'; }

{
  echo "#### starttls proxy vs nginx mail proxy — $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m), loopback"
  echo
  echo "Go $(go env GOVERSION), $("$NGINX" -v 2>&1 | sed 's/.*: //') (mail module, worker_processes 2), $(openssl version | cut -d' ' -f1-2); ECDSA P-256, TLS 1.3, full handshakes; auth_http: $([ "$AUTH" = go ] && echo "a Go process (loadgen auth)" || echo "a location in the same nginx"); clients, proxies, auth and backend on the same machine."
  echo "Command: \`BENCH_D=$D BENCH_C=$C BENCH_SIZE=$SIZE BENCH_AUTH=$AUTH bench/proxy-vs-nginx.sh\`"
  echo
  echo "| contestant | mail sessions/s ($C clients, ${SIZE}-byte message) | earlier round | failed | loadgen hs sessions/s (no mail) | earlier round |"
  echo "|---|---:|---:|---:|---:|---:|"
  for who in "${contestants[@]}"; do
    echo "| $who | $(num "mail/$who" per_second) | $(num1 "mail/$who" per_second) | $(num "mail/$who" failed) | $(num "hs/$who" per_second) | $(num1 "hs/$who" per_second) |"
  done
  echo
  echo "| ratio ours / nginx | mail sessions/s | earlier round | loadgen hs | earlier round |"
  echo "|---|---:|---:|---:|---:|"
  for m in starttls implicit; do
    echo "| $m | $(ratio "$(num "mail/ours-$m" per_second)" "$(num "mail/nginx-$m" per_second)") | $(ratio "$(num1 "mail/ours-$m" per_second)" "$(num1 "mail/nginx-$m" per_second)") | $(ratio "$(num "hs/ours-$m" per_second)" "$(num "hs/nginx-$m" per_second)") | $(ratio "$(num1 "hs/ours-$m" per_second)" "$(num1 "hs/nginx-$m" per_second)") |"
  done
  echo
  for who in ours-starttls nginx-starttls; do
    echo "What a STARTTLS client sees from $who:"
    echo
    echo '```'
    echo "${CAPS[$who]}" | sed 's/^caps\.//'
    echo '```'
    echo
  done
  for k in "${!R[@]}"; do case "${R[$k]}" in failed*) echo "- $k: ${R[$k]}";; esac; done
  grep -v '^\s*$' "$tmp/nginx/error.log" 2>/dev/null | tail -5 | sed 's/^/- nginx error.log: /' || true
} | tee ${OUT:+"$OUT"}
