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
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
