#!/usr/bin/env bash
# Installs everything engineio-glib needs to build, run and test on Debian 12.
# Idempotent; needs root (or sudo) for apt-get. Used by .ci/run and the
# README's set-up commands.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  meson ninja-build pkg-config gcc clang lld libclang-rt-14-dev
  libglib2.0-dev libjson-glib-dev libmicrohttpd-dev
  # the libsoup 3 host (issue 15): src/adapters/engineio-soup.c and its GIR
  libsoup-3.0-dev gir1.2-soup-3.0
  gobject-introspection libgirepository1.0-dev gir1.2-json-1.0 gi-docgen
  # the Socket.IO Redis adapter (issue 17): hiredis 0.14 (async API, GLib
  # adapter) and msgpack-c; the real Redis its tests start
  libhiredis-dev libmsgpack-dev redis-server
  # nginx in front of three nodes (tests/socketio/interop-sio-nginx.mjs runs
  # it as its own foreground process; the package's service is not used)
  nginx-light
  # tests: Python bindings and a real Python client, a real browser
  python3-gi python3-pytest python3-engineio python3-socketio python3-requests python3-websocket chromium
  # tools the tests use
  curl procps
  # TLS (issue 15): the GIO TLS backend GTlsCertificate needs, and the
  # tests' certificate authority
  glib-networking openssl
  # the TSan stage: Debian's GLib source (apt-get source, dpkg-source) rebuilt
  # with gcc's ThreadSanitizer by .ci/build-tsan-glib.sh
  dpkg-dev xz-utils debian-archive-keyring libtsan2 libffi-dev libpcre2-dev zlib1g-dev
)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  # Packages with a daemon (redis-server, nginx) must not start it: the
  # tests start their own on ports they pick, and a start that fails (port
  # 80 taken) would fail the install. Docker images have a policy-rc.d
  # that says so; a machine without one gets it for the install.
  policy_added=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null || status=$?
  if [ -n "$policy_added" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
  [ $status = 0 ] || exit $status
fi

# Real Engine.IO clients (npm engine.io-client 6 and 3), the reference
# server (engine.io 6) and playwright-core, pinned by package-lock.json.
if [ ! -d tests/interop/node_modules ] ||
   [ tests/interop/package-lock.json -nt tests/interop/node_modules/.package-lock.json ]; then
  npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
fi
echo "install-deps: done"
