#!/usr/bin/env bash
# Benchmark `starttls check` against testssl.sh on the same local STARTTLS
# servers (127.0.0.1 only), in the same run. See bench/README.md.
#
#   bench/check-vs-testssl.sh            # from the repo root
#   BENCH_RUNS=5 BENCH_OUT=/tmp/bench.md bench/check-vs-testssl.sh
#
# Env:
#   BENCH_RUNS       runs per tool per server (default 3; the median is reported)
#   BENCH_OUT        also write the markdown report to this file
#   BENCH_PROTOS     protocols to serve (default "smtp imap pop3")
#   BENCH_LEGACY     1 = also a legacy SMTP server (TLS 1.0-1.2, RSA kex, 3DES, RC4;
#                    bench/legacyserver, built with -tags bench) (default 1)
#   BENCH_FULL       1 = add a row per server for a default (full) testssl run (default 1)
#   BENCH_TESTSSL_ARGS  the targeted testssl checks (default "-p -E -S"; -E lists
#                    suites per TLS version so they can be compared per version)
#   BENCH_TIMEOUT    per-invocation timeout in seconds (default 300)
#   TESTSSL          testssl command (default: testssl, else testssl.sh)
set -euo pipefail

RUNS=${BENCH_RUNS:-3}
PROTOS=${BENCH_PROTOS:-smtp imap pop3}
FULL=${BENCH_FULL:-1}
LEGACY=${BENCH_LEGACY:-1}
read -r -a TARGS <<<"${BENCH_TESTSSL_ARGS:--p -E -S}"
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
if [ "$LEGACY" = 1 ]; then
  (cd "$ROOT" && go build -tags bench -o "$TMP/legacyserver" ./bench/legacyserver) || die "go build legacyserver failed"
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
median() { tr ' ' '\n' | grep -v '^$' | tr -d '*' | sort -g | awk '{v[NR]=$1} END{ if(NR==0){print "n/a"; exit} if(NR%2) printf "%.3f", v[(NR+1)/2]; else printf "%.3f", (v[NR/2]+v[NR/2+1])/2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="n/a"||b=="n/a"||b+0==0) print "n/a"; else if (a/b>=100) printf "%.0fx", a/b; else printf "%.1fx", a/b }'; }

# --- servers -------------------------------------------------------------
# start_server NAME PROTO -> sets SRV_ADDR, SRV_CA
start_server() {
  local name=$1 proto=$2 out="$TMP/serve-$1.log" i
  case $name in
    legacy-*) "$TMP/legacyserver" --proto "$proto" --listen 127.0.0.1:0 >"$out" 2>&1 & ;;
    *) "$TMP/starttls" serve --proto "$proto" --listen 127.0.0.1:0 >"$out" 2>&1 & ;;
  esac
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
  case $SRV_ADDR in 127.0.0.1:*) ;; *) die "server not on loopback: $SRV_ADDR";; esac
}

# --- extraction: lines "tls1.2 TLS_ECDHE_..." / "version tls1.2" -----------
starttls_versions() { jq -r '.tls.versions // {} | to_entries[] | select(.value==true) | .key' "$1" | sort -u; }
starttls_suites()   { jq -r '.tls.cipher_suites // {} | to_entries[] | .key as $v | .value[] | "\($v) \(.)"' "$1" | sort -u; }

# testssl flat JSON (--jsonfile): [{id, severity, finding}, ...]
testssl_versions() {
  jq -r '.[] | select(.id|test("^(SSLv2|SSLv3|TLS1(_[123])?)$")) | select(.finding|test("^offered")) | .id' "$1" |
    sed -e 's/^SSLv3$/sslv3/' -e 's/^SSLv2$/sslv2/' -e 's/^TLS1$/tls1.0/' -e 's/^TLS1_\([123]\)$/tls1.\1/' | sort -u
}
# -E: ids like cipher-tls1_2_xc02b; -e / default run: cipher_xc02b (no version, "any")
# ids like cipher-tls1_2_xc02b, finding "TLSv1.2   xc02b   ECDHE-ECDSA-AES128-GCM-SHA256 ECDH 253 AESGCM 128 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
testssl_suites() {
  jq -r '.[] | select(.id|test("^cipher[-_]((tls1|ssl)[_0-9]*_)?x[0-9a-f]+$")) | "\(.id) \(.finding)"' "$1" |
    awk '{ id=$1; sub(/^cipher[-_]/,"",id); v="any";
           if (id ~ /_x/) { split(id,a,"_x"); v=a[1] }
           if (v=="tls1") v="tls1.0"; else if (v=="ssl3") v="sslv3"; else sub(/^tls1_/,"tls1.",v)
           print v, $NF }' | sort -u
}

starttls_groups() { jq -r '.tls.groups // [] | .[]' "$1" | sort -u; }
# default run only: PFS_ECDHE_curves "prime256v1 secp384r1 secp521r1 X25519" (OpenSSL names)
testssl_groups() {
  jq -r '.[] | select(.id=="PFS_ECDHE_curves") | .finding' "$1" | tr ' ' '\n' | grep -v '^$' |
    sed -e 's/^prime256v1$/secp256r1/' -e 's/^X25519$/x25519/' -e 's/^X448$/x448/' | sort -u
}
starttls_pref() { jq -r '.tls.server_preference // {} | to_entries | map("\(.key)=\(if .value then "server" else "client" end)") | join(" ")' "$1"; }
testssl_pref() { jq -r '[.[] | select(.id=="cipher_order") | .finding] | join("; ")' "$1"; }

# run CMD... in the background and wait, so that INT/TERM reach the trap at
# once instead of after the (possibly minutes-long) child; never fails.
run() { LAST_RC=0; "$@" & CHILD=$!; wait "$CHILD" || LAST_RC=$?; CHILD=""; }

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

diffsets() { # label fileA(starttls) fileB(testssl)
  local both onlyA onlyB
  both=$(comm -12 "$2" "$3" | wc -l); onlyA=$(comm -23 "$2" "$3" | tr '\n' ';' | sed 's/;$//; s/;/, /g')
  onlyB=$(comm -13 "$2" "$3" | tr '\n' ';' | sed 's/;$//; s/;/, /g')
  echo "| $1 | $both | ${onlyA:-—} | ${onlyB:-—} |"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
REPORT="$TMP/report.md"
TIMES="$TMP/times.md"; DIFFS="$TMP/diffs.md"
: >"$TIMES"; : >"$DIFFS"

SERVERS=$PROTOS
[ "$LEGACY" = 1 ] && SERVERS="$SERVERS legacy-smtp"
for name in $SERVERS; do
  proto=${name#legacy-}
  start_server "$name" "$proto"
  url="$proto://$SRV_ADDR"
  log "$name server on $SRV_ADDR (CA $SRV_CA)"
  st=() ts=() tf=() cst=() cts=() ctf=()
  for r in $(seq 1 "$RUNS"); do
    t0=$(now); run_starttls "$url" "$SRV_CA" "$TMP/st-$name-$r.json"; t1=$(now)
    st+=("$(elapsed "$t0" "$t1")$TIMEDOUT"); cst+=("$(cpusecs "$TMP/st-$name-$r.json.cpu")")
    t0=$(now); run_testssl targeted "$proto" "$SRV_ADDR" "$SRV_CA" "$TMP/ts-$name-$r.json"; t1=$(now)
    ts+=("$(elapsed "$t0" "$t1")$TIMEDOUT"); cts+=("$(cpusecs "$TMP/ts-$name-$r.json.cpu")")
    if [ "$FULL" = 1 ]; then
      t0=$(now); run_testssl full "$proto" "$SRV_ADDR" "$SRV_CA" "$TMP/tf-$name-$r.json"; t1=$(now)
      tf+=("$(elapsed "$t0" "$t1")$TIMEDOUT"); ctf+=("$(cpusecs "$TMP/tf-$name-$r.json.cpu")")
    fi
    log "$name run $r: starttls ${st[-1]}s, testssl ${TARGS[*]} ${ts[-1]}s$( [ "$FULL" = 1 ] && echo ", testssl default ${tf[-1]}s")"
  done
  mst=$(echo "${st[*]}" | median); mts=$(echo "${ts[*]}" | median)
  cmst=$(echo "${cst[*]}" | grep -v n/a | median); cmts=$(echo "${cts[*]}" | grep -v n/a | median)
  echo "| $name | \`starttls check --only full\` | $mst | ${st[*]} | 1.0x | $cmst | 1.0x |" >>"$TIMES"
  echo "| $name | \`testssl ${TARGS[*]}\` | $mts | ${ts[*]} | $(ratio "$mts" "$mst") | $cmts | $(ratio "$cmts" "$cmst") |" >>"$TIMES"
  if [ "$FULL" = 1 ]; then
    mtf=$(echo "${tf[*]}" | median); cmtf=$(echo "${ctf[*]}" | grep -v n/a | median)
    echo "| $name | \`testssl\` (default run) | $mtf | ${tf[*]} | $(ratio "$mtf" "$mst") | $cmtf | $(ratio "$cmtf" "$cmst") |" >>"$TIMES"
  fi
  # findings diff from the last run of each tool
  sj="$TMP/st-$name-$RUNS.json"; tj="$TMP/ts-$name-$RUNS.json"; fj="$TMP/tf-$name-$RUNS.json"
  sstatus=$(jq -r '.status // "?"' "$sj" 2>/dev/null || echo "no JSON")
  starttls_versions "$sj" >"$TMP/sv" 2>/dev/null || : >"$TMP/sv"
  starttls_suites "$sj" >"$TMP/ss" 2>/dev/null || : >"$TMP/ss"
  if [ -s "$tj" ]; then testssl_versions "$tj" >"$TMP/tv"; testssl_suites "$tj" >"$TMP/tsu"
  else : >"$TMP/tv"; : >"$TMP/tsu"; log "no testssl JSON for $name (see $tj.log)"; fi
  awk '{print $2}' "$TMP/ss" | sort -u >"$TMP/ssn"; awk '{print $2}' "$TMP/tsu" | sort -u >"$TMP/tsn"
  {
    echo "#### $name ($url)"
    echo
    echo "- starttls status: $sstatus; findings: $(jq -r '[.findings[]? | "\(.id) (\(.severity))"] | join(", ") | if .=="" then "none" else . end' "$sj" 2>/dev/null | cut -c1-400)"
    if [ "$FULL" = 1 ] && [ -s "$fj" ]; then
      echo "- testssl default run, severity MEDIUM or worse: $(jq -r '[.[] | select(.severity|test("MEDIUM|HIGH|CRITICAL")) | "\(.id) (\(.severity))"] | join(", ") | if .=="" then "none" else . end' "$fj" | cut -c1-400)"
    fi
    echo
    echo "| what | same | only starttls | only testssl |"
    echo "|---|---|---|---|"
    diffsets "TLS versions" "$TMP/sv" "$TMP/tv"
    if grep -q '^any ' "$TMP/tsu"; then
      echo "| cipher suites (version + IANA name) | n/a: these testssl flags do not report versions (use -E) | | |"
    else
      diffsets "cipher suites (version + IANA name)" "$TMP/ss" "$TMP/tsu"
    fi
    diffsets "cipher suite names (any version)" "$TMP/ssn" "$TMP/tsn"
    if [ "$FULL" = 1 ] && [ -s "$fj" ]; then
      testssl_versions "$fj" >"$TMP/fv"; diffsets "TLS versions (vs testssl default run)" "$TMP/sv" "$TMP/fv"
      testssl_suites "$fj" | awk '{print $2}' | sort -u >"$TMP/fsn"
      diffsets "cipher suite names (vs testssl default run)" "$TMP/ssn" "$TMP/fsn"
      starttls_groups "$sj" >"$TMP/sg"; testssl_groups "$fj" >"$TMP/fg"
      diffsets "key exchange groups (vs testssl default run)" "$TMP/sg" "$TMP/fg"
    fi
    echo
    echo "- versions — starttls: $(tr '\n' ' ' <"$TMP/sv"); testssl: $(tr '\n' ' ' <"$TMP/tv")"
    echo "- cipher order — starttls: $(starttls_pref "$sj"); testssl: $( [ -s "$fj" ] && testssl_pref "$fj" || echo "n/a (default run only)")"
    echo "- suites per version — starttls: $(awk '{c[$1]++} END{for(v in c) printf "%s=%d ", v, c[v]}' "$TMP/ss"); testssl: $(awk '{c[$1]++} END{for(v in c) printf "%s=%d ", v, c[v]}' "$TMP/tsu")"
    echo
  } >>"$DIFFS"
  # keep the raw outputs of the last run next to BENCH_OUT, if asked
  if [ -n "${BENCH_RAW:-}" ]; then
    mkdir -p "$BENCH_RAW"; cp "$sj" "$BENCH_RAW/starttls-$name.json"; [ -s "$tj" ] && cp "$tj" "$BENCH_RAW/testssl-$name.json"
    [ -s "$fj" ] && cp "$fj" "$BENCH_RAW/testssl-full-$name.json"; true
  fi
done

{
  echo "### Setup"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(uname -sm)"
  echo "- starttls: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && [ -n "$(git status --porcelain 2>/dev/null)" ] && echo ' (dirty tree)'), $(go version | awk '{print $3}')"
  echo "- testssl: $("$TESTSSL" --version 2>/dev/null | sed -n 's/.*testssl[^0-9]*\([0-9][0-9.a-z-]*\) from.*/\1/p' | head -1) ($TESTSSL); openssl: $(openssl version)"
  echo "- load average (1/5/15 min) at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') — other work on the machine inflates both tools' times"
  echo "- runs per tool per server: $RUNS, run alternately on the same server; servers on 127.0.0.1 only"
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
  echo "### What each found"
  echo
  cat "$DIFFS"
} >"$REPORT"

cat "$REPORT"
[ -n "${BENCH_OUT:-}" ] && cp "$REPORT" "$BENCH_OUT"
exit 0
