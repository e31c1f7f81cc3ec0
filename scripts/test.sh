#!/usr/bin/env bash
# The project's whole test run: installs the Debian peers the interop tests
# start on loopback (Postfix, Dovecot, ...), then gofmt, go vet, staticcheck,
# every test, and a brief run of every fuzz target.
#   FUZZTIME=30s scripts/test.sh   fuzz longer
#   NOFUZZ=1 scripts/test.sh       skip fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  bash .ci/install-deps.sh
elif command -v sudo >/dev/null; then
  sudo bash .ci/install-deps.sh
else
  echo "test.sh: not root and no sudo: peers are not installed; interop tests will skip (fail under CI=true)" >&2
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
go tool staticcheck ./...

echo "== go test"
# One package at a time: the interop tests start real daemons whose
# greetings and handshakes must not queue behind another package's load.
go test -count=1 -p 1 -timeout 25m ./...

if [ -z "${NOFUZZ:-}" ]; then
  fuzztime=${FUZZTIME:-4s}
  echo "== fuzz (${fuzztime} each)"
  # Every Fuzz function, found by name in *_test.go files, run alone in its
  # package. The list is built first so that "no targets" is an error, not
  # a silent pass.
  targets=$(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . | sort || true)
  if [ -z "$targets" ]; then echo "no fuzz targets found" >&2; exit 1; fi
  n=0 flaked=0
  while IFS= read -r hit; do
    file=${hit%%:*}
    fz=$(printf '%s' "${hit#*:}" | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/')
    dir=$(dirname "$file")
    echo "-- $dir $fz"
    # go1.26's fuzz coordinator can fail a target with a bare "context
    # deadline exceeded" when -fuzztime ends while a worker is mid-call
    # (golang/go#75804, fixed in go1.27): no input is written then. Only a
    # run that wrote a new reproducer, or failed any other way, fails here.
    corpus="$dir/testdata/fuzz/$fz"
    before=$(ls "$corpus" 2>/dev/null | sort || true)
    if ! go test -run '^$' -fuzz "^${fz}\$" -fuzztime "$fuzztime" "$dir" >/tmp/starttls-fuzz.log 2>&1; then
      after=$(ls "$corpus" 2>/dev/null | sort || true)
      if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' /tmp/starttls-fuzz.log \
        && ! grep -q -E 'panic|Failing input|--- FAIL: .*\(' <(grep -v -- "--- FAIL: $fz (" /tmp/starttls-fuzz.log); then
        echo "   (go1.26 fuzz-coordinator deadline race, no reproducer written: golang/go#75804)"
        flaked=$((flaked+1))
      else
        cat /tmp/starttls-fuzz.log; exit 1
      fi
    fi
    n=$((n+1))
  done <<<"$targets"
  echo "fuzzed $n targets ($flaked hit the coordinator race)"
fi
echo "== all tests passed"
