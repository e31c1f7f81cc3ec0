#!/usr/bin/env bash
# Installs the Debian packages the tests start as real peers (never as
# system services: the tests run their own instances on loopback).
# Idempotent and quiet: nothing is fetched when everything is present.
set -euo pipefail

packages=(
  postfix            # SMTP/submission/smtps peer (interop, check)
  dovecot-imapd      # IMAP/IMAPS peer
  dovecot-pop3d      # POP3/POP3S peer
  openssl            # s_client/s_server against our server and prober
  gnutls-bin         # gnutls-cli --starttls-proto against our server
  curl               # smtp/imap/pop3 client with --ssl-reqd
  swaks              # SMTP client with STARTTLS
  libnet-ssleay-perl # swaks's TLS
  libio-socket-ssl-perl
  testssl.sh         # benchmark reference for check
  ca-certificates
)

# Protocol peers list their packages in .ci/deps/*.txt (one per line, #
# comments), so that each protocol's tests bring their own.
here=$(dirname "$0")
for f in "$here"/deps/*.txt; do
  [ -e "$f" ] || continue
  while read -r p _; do
    case "$p" in ""|"#"*) continue ;; esac
    packages+=("$p")
  done <"$f"
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself; the tests bring their own configuration.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string mail.test" | debconf-set-selections
# No daemon may start as a system service during installation: the tests
# run their own instances (policy-rc.d is Debian's switch for that).
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
fi
trap '[ -n "$own_policy" ] && rm -f "$policy"' EXIT
apt-get update -qq >/dev/null
# Postinst scripts that need a configured system: inn2 wants a domain in
# inn.conf (a container's hostname has none) and runs newaliases, which
# needs a Postfix main.cf (Postfix is installed unconfigured).
fixups() {
  [ -e /etc/postfix ] && [ ! -e /etc/postfix/main.cf ] && touch /etc/postfix/main.cf
  if [ -e /etc/news/inn.conf ] && ! grep -q '^domain:' /etc/news/inn.conf; then
    echo 'domain: test' >>/etc/news/inn.conf
  fi
  return 0
}
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/install-deps.log 2>&1; then
  fixups
  dpkg --configure -a >>/tmp/install-deps.log 2>&1 || true
  apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/install-deps.log 2>&1 || {
    echo "install-deps: apt-get install failed:" >&2
    tail -40 /tmp/install-deps.log >&2
    exit 1
  }
fi
# A postinst may have started the system instances; the tests need the ports
# and their own configuration, so stop them.
if command -v postfix >/dev/null && postfix status >/dev/null 2>&1; then postfix stop >/dev/null 2>&1 || true; fi
if command -v doveadm >/dev/null; then doveadm stop >/dev/null 2>&1 || true; fi
pkill -x master 2>/dev/null || true
pkill -x dovecot 2>/dev/null || true
exit 0
