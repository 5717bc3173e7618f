#!/bin/sh
# Builds engineio-chat and runs the browser test against it.
#
#   tests/browser/run-chat.sh [BUILD_DIR]       (default: ./build)
#
# Needs node, /usr/bin/chromium (apt-get install -y chromium) and
# playwright-core (npm ci --prefix tests/interop). Set
# ENGINEIO_SAVE_SCREENSHOT=1 to refresh data/screenshot.png.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
ninja -C "$build" src/demo/engineio-chat
exec node "$here/chat.spec.mjs" --chat "$build/src/demo/engineio-chat" --out-dir "$build/src/demo"
