#!/bin/sh
# Builds socketio-chat and the SocketIO typelib, and runs the browser test
# against the C server and against data/python/sio-chat.py.
#
#   tests/browser/run-sio-chat.sh [BUILD_DIR]       (default: ./build)
#
# Needs node, /usr/bin/chromium (apt-get install -y chromium), playwright-core
# and socket.io-client (npm ci --prefix tests/interop), and a build configured
# with -Ddemo=true.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
ninja -C "$build" src/demo/socketio-chat src/socketio/SocketIO-1.0.typelib
node "$here/sio-chat.spec.mjs" --chat "$build/src/demo/socketio-chat" --out-dir "$build/src/demo"
GI_TYPELIB_PATH="$build/src:$build/src/socketio${GI_TYPELIB_PATH:+:$GI_TYPELIB_PATH}" \
LD_LIBRARY_PATH="$build/src:$build/src/socketio${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  exec node "$here/sio-chat.spec.mjs" --python "$here/../../data/python/sio-chat.py" \
    --bundle "$build/src/demo/socket.io.min.js" --out-dir "$build/src/demo"
