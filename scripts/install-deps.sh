#!/usr/bin/env bash
# Installs the Debian bookworm packages Sluice needs to build and test. Idempotent: only
# runs apt-get when something is missing. Run as root (or with sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev
  # libraries (see README "Dependencies" for why each)
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libsqlite3-dev libyaml-cpp-dev libgmime-3.0-dev libzstd-dev libc-ares-dev
  libcrypt-dev libgtest-dev libgmock-dev
  libglib2.0-dev  # store search: GTimeZone for before:/after:, Unicode case folding
  zlib1g-dev  # gzip for HTTP responses (plugins/http)
  # HTTP API: attachment thumbnails (PNG/JPEG/GIF/BMP decode, JPEG encode)
  libgdk-pixbuf-2.0-dev
  # libxml2's HTML parser: the mime stage turns HTML bodies into text for search and snippets
  libxml2-dev
  libpcre2-dev  # the rewrite stage's regular expressions (bounded matching, JIT; plugins/rewrite)
  # real, independent clients and tools the tests drive
  python3 python3-dnslib openssl swaks curl apache2-utils procps
  # swaks needs these for STARTTLS (recommended, not required, by its package)
  libnet-ssleay-perl libio-socket-ssl-perl
  # POP3 clients the pop3 tests drive: Ruby's net/pop (what Zammad uses) and fetchmail (STLS)
  ruby
  fetchmail
  # the auth tests' DNS server (tests/data/auth/spf_dns_server.py) reads the RFC 7208 suite's YAML
  python3-yaml
  # the browser the web UI test drives with playwright-core (tests/ui; node and npm are also needed)
  chromium
  python3-websocket  # WebSocket client for the HTTP event-stream tests
  ca-certificates  # the system trust store the webhook stage verifies https:// receivers against
  libpcre2-dev  # the spam plugin's rules: PCRE2 regular expressions, JIT-compiled once at load
  spamassassin spamd  # the spam plugin's spamassassin engine test runs Debian's spamd on loopback
  rspamd  # the spam plugin's rspamd engine test runs Debian's rspamd on loopback
  # DMARC organizational domains (plugins/auth, found with pkg-config libpsl)
  libpsl-dev
  # DMARC looks up an internationalized From domain by its A-label (RFC 8616; plugins/auth)
  libidn2-dev
  # DKIM interoperability tests: dkimpy signs/verifies (python3-nacl for ed25519) and OpenDKIM's
  # opendkim-testmsg verifies Sluice's signatures; iproute2 brings up loopback in the private
  # network namespace opendkim-testmsg runs in (its DNS is the test server on port 53)
  python3-dkim python3-nacl opendkim-tools iproute2
  # the relay tests' upstream SMTP servers: aiosmtpd (STARTTLS, AUTH) and Postfix's smtp-sink
  python3-aiosmtpd
  postfix
)

# Node.js for the web UI test (tests/ui): Debian's own unless a node is already installed
# (e.g. from NodeSource, whose nodejs package bundles npm and conflicts with Debian's npm).
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # postfix is here only for smtp-sink (the relay tests' upstream): no mail system, no daemon.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [[ -x /usr/sbin/postfix ]] && /usr/sbin/postfix status >/dev/null 2>&1; then
  $SUDO /usr/sbin/postfix stop >/dev/null 2>&1 || true
fi

# The HTML check's data (plugins/http, html_check.hpp): caniemail.com's support table from the
# npm package `caniemail`, pinned by version and by the SHA-256 of the JSON it ships. It goes
# to third_party/caniemail/ (not committed), from where the build copies it. Without the npm
# registry the build still works and the html-check endpoint answers 404.
CANIEMAIL_VERSION=2.0.2
CANIEMAIL_SHA256=28121a5dac0eab0f405ff091af8408c2aa092e6ff22e3240c4e42388b7f403a4
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cie_dir="$root/third_party/caniemail"
cie_json="$cie_dir/caniemail.json"
if ! echo "$CANIEMAIL_SHA256  $cie_json" | sha256sum -c --status 2>/dev/null; then
  tmp="$(mktemp -d)"
  if (cd "$tmp" && npm pack --silent "caniemail@$CANIEMAIL_VERSION" >/dev/null 2>&1) &&
    tar -xzf "$tmp/caniemail-$CANIEMAIL_VERSION.tgz" -C "$tmp" package/data/caniemail.json &&
    echo "$CANIEMAIL_SHA256  $tmp/package/data/caniemail.json" | sha256sum -c --status; then
    mkdir -p "$cie_dir"
    mv "$tmp/package/data/caniemail.json" "$cie_json"
    echo "install-deps: caniemail $CANIEMAIL_VERSION data in $cie_json"
  else
    echo "install-deps: could not fetch caniemail@$CANIEMAIL_VERSION from the npm registry" \
      "(or its data did not match the pinned SHA-256): the HTML check stays off" >&2
  fi
  rm -rf "$tmp"
fi
