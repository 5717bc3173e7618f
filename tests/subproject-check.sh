#!/usr/bin/env bash
# Uses this source tree as a meson subproject (subprojects/engineio-glib, a
# symlink) of a scratch project: `dependency('engineio-1.0')`,
# 'socketio-1.0' and 'engineio-mhd-1.0' resolve to the subproject's
# libraries (meson.override_dependency), and a program on all three
# configures, builds, links the subproject's libraries and runs.
# Usage: subproject-check.sh SOURCE_ROOT
set -euo pipefail
src=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/subprojects"
ln -s "$src" "$work/subprojects/engineio-glib"
cat >"$work/meson.build" <<'EOF'
project('consumer', 'c', meson_version: '>= 0.63')
subproject('engineio-glib',
  default_options: ['tests=false', 'demo=false', 'introspection=disabled', 'documentation=false'])
foreach name : ['engineio-1.0', 'socketio-1.0', 'engineio-mhd-1.0']
  assert(dependency(name).type_name() == 'internal', name + ' is not the subproject\'s')
endforeach
executable('consumer', 'consumer.c',
  dependencies: [dependency('socketio-1.0'), dependency('engineio-mhd-1.0')])
EOF
cat >"$work/consumer.c" <<'EOF'
#include <socketio/socketio.h>
#include <engineio/engineio-mhd.h>

int
main (void)
{
  g_autoptr(EngineIOServer) engine = engine_io_server_new ();
  g_autoptr(SocketIOServer) io = socket_io_server_new (engine);
  __typeof__ (engine_io_server_mhd_handler) *volatile handler = engine_io_server_mhd_handler;

  return io != NULL && handler != NULL && MHD_get_version () != NULL ? 0 : 1;
}
EOF
cd "$work"
meson setup build >setup.log 2>&1 || { cat setup.log; echo "FAIL: meson setup"; exit 1; }
meson compile -C build consumer >compile.log 2>&1 || { cat compile.log; echo "FAIL: meson compile"; exit 1; }
linked=$(ldd build/consumer)
grep -q "$work/build/subprojects/engineio-glib/src/libengineio-1.0.so" <<<"$linked" ||
  { echo "FAIL: the consumer does not link the subproject's libengineio-1.0"; echo "$linked"; exit 1; }
build/consumer || { echo "FAIL: the consumer exited $?"; exit 1; }
echo "ok: dependency('engineio-1.0'), ('socketio-1.0') and ('engineio-mhd-1.0') from the subproject"
