#!/usr/bin/env bash
# Differential test and benchmark of `starttls check` against testssl.sh on
# the same local STARTTLS servers (loopback only), in the same run. See
# bench/README.md and docs/bench.md.
#
#   bench/check-vs-testssl.sh            # from the repo root, as root
#   BENCH_RUNS=1 BENCH_OUT=/tmp/bench.md bench/check-vs-testssl.sh
#   BENCH_SERVERS="postfix-modern legacy-go" bench/check-vs-testssl.sh
#
# The servers come from bench/diffservers (internal/peer's StartDiffSet, the
# set-up the Go differential test uses, plus bench/legacyserver's crypto/tls
# configuration as legacy-go): Postfix modern / legacy / DHE-1024 / expired /
# self-signed / name-mismatch, Dovecot IMAP and POP3, openssl s_server. Both
# tools' JSON is normalised field by field (bench/diffservers/starttls.jq and
# testssl.jq) and joined (join.awk): a table per server, then a summary.
#
# Env:
#   BENCH_RUNS       runs per tool per server (default 3; the median is reported)
#   BENCH_OUT        also write the markdown report to this file
#   BENCH_SERVERS    diffservers names (default: all of them, legacy-go included)
#   BENCH_PROTOS     also `starttls serve` servers for these protocols (default none;
#                    e.g. "smtp imap pop3")
#   BENCH_FULL       1 = add a row per server for a default (full) testssl run (default 1)
#   BENCH_TESTSSL_ARGS  the targeted testssl checks (default "-p -E -S"; -E lists
#                    suites per TLS version so they can be compared per version)
#   BENCH_TARGETED   1 = also run testssl with BENCH_TESTSSL_ARGS (default 1; the only
#                    source of testssl's suites per version)
#   BENCH_TIMEOUT    per-invocation timeout in seconds (default 300)
#   TESTSSL          testssl command (default: testssl, else testssl.sh)
set -euo pipefail

RUNS=${BENCH_RUNS:-3}
PROTOS=${BENCH_PROTOS:-}
FULL=${BENCH_FULL:-1}
read -r -a DSNAMES <<<"${BENCH_SERVERS:-}"
read -r -a TARGS <<<"${BENCH_TESTSSL_ARGS:--p -E -S}"
TARGETED=${BENCH_TARGETED:-1}
DS=$(cd "$(dirname "$0")" && pwd)/diffservers
TMO=${BENCH_TIMEOUT:-300}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/bench-starttls.XXXXXX)
PIDS=()

CADIRS=()
CHILD=""
cleanup() {
  local p
  [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null || true
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  # `starttls serve` leaves its throwaway CA directory behind; remove ours.
  for p in "${CADIRS[@]:-}"; do
    case $p in /tmp/starttls-serve-*) rm -rf "$p" ;; esac
  done
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

TESTSSL=${TESTSSL:-$(command -v testssl || command -v testssl.sh || true)}
[ -n "$TESTSSL" ] || die "testssl not found (apt-get install -y testssl.sh)"
command -v jq >/dev/null || die "jq not found (apt-get install -y jq)"
command -v openssl >/dev/null || die "openssl not found"

log "building starttls"
(cd "$ROOT" && go build -o "$TMP/starttls" ./cmd/starttls) || die "go build failed"
(cd "$ROOT" && go build -tags bench -o "$TMP/diffservers" ./bench/diffservers) || die "go build diffservers failed"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
median() { tr ' ' '\n' | grep -v '^$' | tr -d '*' | sort -g | awk '{v[NR]=$1} END{ if(NR==0){print "n/a"; exit} if(NR%2) printf "%.3f", v[(NR+1)/2]; else printf "%.3f", (v[NR/2]+v[NR/2+1])/2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="n/a"||b=="n/a"||b+0==0) print "n/a"; else if (a/b>=100) printf "%.0fx", a/b; else printf "%.1fx", a/b }'; }

# --- servers -------------------------------------------------------------
# start_server NAME PROTO -> sets SRV_ADDR, SRV_CA (a `starttls serve` server)
start_server() {
  local name=$1 proto=$2 out="$TMP/serve-$1.log" i
  "$TMP/starttls" serve --proto "$proto" --listen 127.0.0.1:0 >"$out" 2>&1 &
  PIDS+=($!)
  SRV_ADDR="" SRV_CA=""
  for i in $(seq 1 100); do
    SRV_ADDR=$(sed -n 's/^listening on \([0-9.]*:[0-9]*\) .*/\1/p' "$out" | head -1)
    SRV_CA=$(sed -n 's/^CA certificate: //p' "$out" | head -1)
    [ -n "$SRV_ADDR" ] && [ -n "$SRV_CA" ] && break
    sleep 0.1
  done
  [ -n "$SRV_ADDR" ] || { cat "$out" >&2; die "server $name did not start"; }
  CADIRS+=("$(dirname "$SRV_CA")")
}

# start_diffservers NAME... -> $TMP/servers.txt, lines "NAME URL PROTO ADDR CAFILE"
start_diffservers() {
  local i
  "$TMP/diffservers" "$@" >"$TMP/servers.txt" 2>"$TMP/diffservers.log" &
  PIDS+=($!)
  for i in $(seq 1 600); do # Postfix x6, Dovecot, dhparam: up to 60 s on a busy machine
    grep -qx ready "$TMP/servers.txt" && return 0
    kill -0 "${PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TMP/diffservers.log" >&2; die "diffservers did not start"
}

starttls_pref() { jq -r '.tls.server_preference // {} | to_entries | map("\(.key)=\(if .value then "server" else "client" end)") | join(" ")' "$1"; }
testssl_pref() { jq -r '[.[] | select(.id=="cipher_order") | .finding] | join("; ")' "$1"; }

# testssl writes its JSON array as it goes: a killed run leaves it open.
testssl_json() { # in out
  if jq -e . "$1" >/dev/null 2>&1; then cp "$1" "$2"
  else sed '$ s/,$//' "$1" | { cat; echo ']'; } >"$2"; jq -e . "$2" >/dev/null 2>&1 || echo '[]' >"$2"; fi
}

# run CMD... in the background and wait, so that INT/TERM reach the trap at
# once instead of after the (possibly minutes-long) child; never fails.
run() { LAST_RC=0; "$@" </dev/null & CHILD=$!; wait "$CHILD" || LAST_RC=$?; CHILD=""; }

# CPU seconds (user+sys, children included) via GNU time when installed: a
# second metric that other load on the machine disturbs less than wall time.
GNUTIME=$(command -v /usr/bin/time || true)
cputime() { # OUTFILE CMD... -> writes "user sys" to OUTFILE
  local f=$1; shift
  if [ -n "$GNUTIME" ]; then run "$GNUTIME" -f '%U %S' -o "$f" "$@"; else rm -f "$f"; run "$@"; fi
  # timeout(1) exits 124 when it had to kill the tool: mark the time
  if [ "$LAST_RC" = 124 ]; then TIMEDOUT="*"; log "timed out after ${TMO}s: $*"; else TIMEDOUT=""; fi
}
cpusecs() { [ -s "$1" ] && tail -1 "$1" | awk '{printf "%.3f", $1+$2}' || echo "n/a"; }

# --- runs -----------------------------------------------------------------
run_starttls() { # url ca out   (exit 1 = findings, which is expected for legacy)
  cputime "$3.cpu" timeout "$TMO" "$TMP/starttls" check --json --only full --ca "$2" "$1" >"$3" 2>"$3.err"
}
run_testssl() { # mode proto addr ca out
  local mode=$1 proto=$2 addr=$3 ca=$4 out=$5 args=()
  rm -f "$out"
  case $mode in
    targeted) args=("${TARGS[@]}") ;;
    full) args=() ;;
  esac
  cputime "$out.cpu" timeout "$TMO" "$TESTSSL" --quiet --color 0 --warnings off --openssl-timeout 5 --connect-timeout 5 \
    --add-ca "$ca" \
    --jsonfile "$out" --starttls "$proto" "${args[@]}" "$addr" >"$out.log" 2>&1
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
REPORT="$TMP/report.md"
TIMES="$TMP/times.md"; DIFFS="$TMP/diffs.md"; SUMMARY="$TMP/summary.md"
: >"$TIMES"; : >"$DIFFS"; : >"$SUMMARY"

log "starting the differential servers (${DSNAMES[*]:-all})"
start_diffservers "${DSNAMES[@]}"
: >"$TMP/targets.txt"
while read -r name url proto addr ca; do
  [ "$name" = ready ] && break
  case $addr in 127.*:*) ;; *) die "server $name not on loopback: $addr" ;; esac
  echo "$name $url $proto $addr $ca" >>"$TMP/targets.txt"
done <"$TMP/servers.txt"
for proto in $PROTOS; do
  start_server "serve-$proto" "$proto"
  echo "serve-$proto $proto://$SRV_ADDR $proto $SRV_ADDR $SRV_CA" >>"$TMP/targets.txt"
done

while read -r name url proto addr ca; do
  log "$name: $url (CA $ca)"
  st=() ts=() tf=() cst=() cts=() ctf=()
  for r in $(seq 1 "$RUNS"); do
    t0=$(now); run_starttls "$url" "$ca" "$TMP/st-$name-$r.json"; t1=$(now)
    st+=("$(elapsed "$t0" "$t1")$TIMEDOUT"); cst+=("$(cpusecs "$TMP/st-$name-$r.json.cpu")")
    if [ "$TARGETED" = 1 ]; then
      t0=$(now); run_testssl targeted "$proto" "$addr" "$ca" "$TMP/ts-$name-$r.json"; t1=$(now)
      ts+=("$(elapsed "$t0" "$t1")$TIMEDOUT"); cts+=("$(cpusecs "$TMP/ts-$name-$r.json.cpu")")
    fi
    if [ "$FULL" = 1 ]; then
      t0=$(now); run_testssl full "$proto" "$addr" "$ca" "$TMP/tf-$name-$r.json"; t1=$(now)
      tf+=("$(elapsed "$t0" "$t1")$TIMEDOUT"); ctf+=("$(cpusecs "$TMP/tf-$name-$r.json.cpu")")
    fi
    log "$name run $r: starttls ${st[-1]}s$( [ "$TARGETED" = 1 ] && echo ", testssl ${TARGS[*]} ${ts[-1]}s")$( [ "$FULL" = 1 ] && echo ", testssl default ${tf[-1]}s")"
  done
  mst=$(echo "${st[*]}" | median); cmst=$(echo "${cst[*]}" | grep -v n/a | median)
  echo "| $name | \`starttls check --only full\` | $mst | ${st[*]} | 1.0x | $cmst | 1.0x |" >>"$TIMES"
  wr="n/a" cr="n/a"
  if [ "$TARGETED" = 1 ]; then
    mts=$(echo "${ts[*]}" | median); cmts=$(echo "${cts[*]}" | grep -v n/a | median)
    echo "| $name | \`testssl ${TARGS[*]}\` | $mts | ${ts[*]} | $(ratio "$mts" "$mst") | $cmts | $(ratio "$cmts" "$cmst") |" >>"$TIMES"
  fi
  if [ "$FULL" = 1 ]; then
    mtf=$(echo "${tf[*]}" | median); cmtf=$(echo "${ctf[*]}" | grep -v n/a | median)
    wr=$(ratio "$mtf" "$mst"); cr=$(ratio "$cmtf" "$cmst")
    echo "| $name | \`testssl\` (default run) | $mtf | ${tf[*]} | $wr | $cmtf | $cr |" >>"$TIMES"
  fi

  # Field-by-field diff of the last run of each tool: the default run's
  # verdicts and facts, plus -E's suites per version when it ran.
  sj="$TMP/st-$name-$RUNS.json"
  : >"$TMP/tsall.json.in"; echo '[]' >"$TMP/tf.json"; echo '[]' >"$TMP/tt.json"
  [ "$FULL" = 1 ] && [ -s "$TMP/tf-$name-$RUNS.json" ] && testssl_json "$TMP/tf-$name-$RUNS.json" "$TMP/tf.json"
  [ "$TARGETED" = 1 ] && [ -s "$TMP/ts-$name-$RUNS.json" ] && testssl_json "$TMP/ts-$name-$RUNS.json" "$TMP/tt.json"
  # the default run's answer wins for an id both runs report
  jq -s '(.[0] | map(.id)) as $ids | .[0] + (.[1] | map(select(.id as $i | $ids | index($i) | not)))' \
    "$TMP/tf.json" "$TMP/tt.json" >"$TMP/tsall.json"
  # a normaliser that fails loses that server's table, not the whole run
  jq -e .schema "$sj" >/dev/null 2>&1 && jq -r -f "$DS/starttls.jq" "$sj" >"$TMP/sfields" ||
    { log "$name: no starttls fields (see $sj)"; : >"$TMP/sfields"; }
  jq -r -f "$DS/testssl.jq" "$TMP/tsall.json" >"$TMP/tfields" ||
    { log "$name: no testssl fields"; : >"$TMP/tfields"; }
  awk -f "$DS/join.awk" "$TMP/sfields" "$TMP/tfields" >"$TMP/joined"
  read -r _ agree disagree < <(grep '^COUNTS ' "$TMP/joined")
  echo "| $name | $agree | $disagree | $wr | $cr |" >>"$SUMMARY"
  {
    echo "#### $name ($url)"
    echo
    echo "- $(grep "^diffservers: $name: " "$TMP/diffservers.log" | sed "s/^diffservers: $name: //")"
    echo "- starttls status: $(jq -r '.status // "?"' "$sj" 2>/dev/null || echo "no JSON"); findings: $(jq -r '[.findings[]? | "\(.id) (\(.severity))"] | join(", ") | if .=="" then "none" else . end' "$sj" 2>/dev/null | cut -c1-400)"
    echo "- testssl default run, severity MEDIUM or worse: $(jq -r '[.[] | select(.severity|test("MEDIUM|HIGH|CRITICAL")) | "\(.id) (\(.severity))"] | join(", ") | if .=="" then "none" else . end' "$TMP/tf.json" | cut -c1-400)"
    echo "- cipher order — starttls: $(starttls_pref "$sj" 2>/dev/null); testssl: $(testssl_pref "$TMP/tf.json")"
    echo
    echo "| field | starttls | testssl | agree? |"
    echo "|---|---|---|---|"
    grep -v '^COUNTS ' "$TMP/joined"
    echo
  } >>"$DIFFS"
  if [ -n "${BENCH_RAW:-}" ]; then
    mkdir -p "$BENCH_RAW"; cp "$sj" "$BENCH_RAW/starttls-$name.json" 2>/dev/null || true
    cp "$TMP/tsall.json" "$BENCH_RAW/testssl-$name.json"
  fi
done <"$TMP/targets.txt"

{
  echo "### Setup"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(uname -sm)"
  echo "- starttls: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && [ -n "$(git status --porcelain 2>/dev/null)" ] && echo ' (dirty tree)'), $(go version | awk '{print $3}')"
  echo "- testssl: $("$TESTSSL" --version 2>/dev/null | sed -n 's/.*testssl[^0-9]*\([0-9][0-9.a-z-]*\) from.*/\1/p' | head -1) ($TESTSSL); openssl: $(openssl version)"
  echo "- load average (1/5/15 min) at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') — other work on the machine inflates both tools' times"
  echo "- runs per tool per server: $RUNS, taking turns on the same server; servers on loopback only"
  echo
  echo "### Summary (fields both tools measured; ratios: testssl default run / starttls check --only full)"
  echo
  echo "| server | agreements | disagreements | wall ratio | CPU ratio |"
  echo "|---|---|---|---|---|"
  cat "$SUMMARY"
  echo
  echo "### Time (seconds, median of $RUNS; CPU = user+sys incl. children)"
  echo
  echo "| server | tool | median wall s | wall s per run | wall ratio (testssl/starttls) | median CPU s | CPU ratio |"
  echo "|---|---|---|---|---|---|---|"
  cat "$TIMES"
  echo
  if grep -q '\*' "$TIMES"; then
    echo "(\\* after a time: that run hit BENCH_TIMEOUT=${TMO}s and was killed.)"
    echo
  fi
  echo "### Field by field"
  echo
  echo "(\"testssl only\" / \"starttls only\": one tool has no answer for the field; not counted.)"
  echo
  cat "$DIFFS"
} >"$REPORT"

cat "$REPORT"
[ -n "${BENCH_OUT:-}" ] && cp "$REPORT" "$BENCH_OUT"
exit 0
