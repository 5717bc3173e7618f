#!/usr/bin/env bash
# Installs the build into a scratch prefix and checks what a user gets:
# pkg-config works (engineio-1.0, socketio-1.0, engineio-mhd-1.0), the
# installed tools answer --version, the README's C echo server compiles and links against
# the installed library, and Python finds the installed typelib.
# Usage: install-check.sh BUILD_ROOT SOURCE_ROOT
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

DESTDIR="$work/root" meson install -C "$build" --no-rebuild --quiet >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; echo "FAIL: meson install"; exit 1; }
root="$work/root"  # the build's own prefix, staged under DESTDIR
libdir=$(find "$root" -name 'libengineio-1.0.so' -printf '%h\n' | head -n1)
[ -n "$libdir" ] || { echo "FAIL: libengineio-1.0.so not installed"; exit 1; }

# pkg-config: the .pc file names the configured prefix; point it at the
# staged copy.
configured=$(sed -n 's/^prefix=//p' "$libdir/pkgconfig/engineio-1.0.pc")
mkdir "$work/pc"
sed "s|^prefix=.*|prefix=$work/root$configured|" "$libdir/pkgconfig/engineio-1.0.pc" >"$work/pc/engineio-1.0.pc"
export PKG_CONFIG_PATH="$work/pc"
cflags=$(pkg-config --cflags engineio-1.0)
libs=$(pkg-config --libs engineio-1.0)
echo "pkg-config: $cflags $libs"

# The README's 20-line echo server, extracted from the first ```c block.
awk '/^```c$/ {on=1; next} /^```$/ && on {exit} on' "$src/README.md" >"$work/echo.c"
grep -q engine_io_server_listen "$work/echo.c" || { echo "FAIL: README example not found"; exit 1; }
cc -Wall -Werror -o "$work/echo" "$work/echo.c" $cflags $libs
# ldd's output in full first: `ldd | grep -q` under pipefail fails when grep
# exits at its match before ldd has written everything (SIGPIPE).
linked=$(LD_LIBRARY_PATH="$libdir" ldd "$work/echo")
grep -q "$libdir/libengineio-1.0.so" <<<"$linked" ||
  { echo "FAIL: the example does not link the installed library"; echo "$linked"; exit 1; }
echo "README example: compiled and linked"

# socketio-1.0: its .pc (which requires engineio-1.0), headers and library.
sed "s|^prefix=.*|prefix=$work/root$configured|" "$libdir/pkgconfig/socketio-1.0.pc" >"$work/pc/socketio-1.0.pc"
cat >"$work/sio.c" <<'EOF_C'
#include <socketio/socketio.h>

int
main (void)
{
  g_autoptr(EngineIOServer) engine = engine_io_server_new ();
  g_autoptr(SocketIOServer) io = socket_io_server_new (engine);
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (io, "/chat");

  return g_strcmp0 (socket_io_namespace_get_name (nsp), "/chat") == 0 ? 0 : 1;
}
EOF_C
cc -Wall -Werror -o "$work/sio" "$work/sio.c" $(pkg-config --cflags --libs socketio-1.0)
LD_LIBRARY_PATH="$libdir" "$work/sio" || { echo "FAIL: the socketio-1.0 example"; exit 1; }
[ -x "$root$configured/bin/socketio-echo" ] || { echo "FAIL: socketio-echo not installed"; exit 1; }
echo "socketio-1.0: compiled, linked and ran"

# engineio-mhd-1.0: <engineio/engineio-mhd.h> includes <microhttpd.h>, so
# it is its own module (engineio-1.0 plus libmicrohttpd); engineio-1.0's
# Requires name only what its headers include.
sed "s|^prefix=.*|prefix=$work/root$configured|" "$libdir/pkgconfig/engineio-mhd-1.0.pc" >"$work/pc/engineio-mhd-1.0.pc"
requires=$(pkg-config --print-requires engineio-1.0)
if grep -q -e microhttpd -e json-glib <<<"$requires"; then
  echo "FAIL: engineio-1.0 requires more than its headers include: $requires"; exit 1
fi
cat >"$work/mhd.c" <<'EOF_C'
#include <engineio/engineio-mhd.h>

int
main (void)
{
  g_autoptr(EngineIOServer) server = engine_io_server_new ();
  __typeof__ (engine_io_server_mhd_handler) *volatile handler = engine_io_server_mhd_handler;
  __typeof__ (engine_io_server_mhd_completed) *volatile completed = engine_io_server_mhd_completed;

  return server != NULL && handler != NULL && completed != NULL && MHD_get_version () != NULL ? 0 : 1;
}
EOF_C
cc -Wall -Werror -o "$work/mhd" "$work/mhd.c" $(pkg-config --cflags --libs engineio-mhd-1.0)
LD_LIBRARY_PATH="$libdir" "$work/mhd" || { echo "FAIL: the engineio-mhd-1.0 example"; exit 1; }
echo "engineio-mhd-1.0: compiled, linked and ran"

# engineio-soup-1.0 (built when libsoup 3 was found, the `soup` option):
# <engineio/engineio-soup.h> includes <libsoup/soup.h>, its own module too.
soup=$(/usr/bin/python3 -c '
import json, sys
opts = json.load(open(sys.argv[1]))
print(next(o["value"] for o in opts if o["name"] == "soup"))
' "$build/meson-info/intro-buildoptions.json")
if [ -f "$libdir/pkgconfig/engineio-soup-1.0.pc" ]; then
  [ -f "$root$configured/include/engineio-1.0/engineio/engineio-soup.h" ] ||
    { echo "FAIL: engineio-soup.h not installed"; exit 1; }
  if grep -q -e soup <<<"$requires"; then
    echo "FAIL: engineio-1.0 requires libsoup: $requires"; exit 1
  fi
  sed "s|^prefix=.*|prefix=$work/root$configured|" "$libdir/pkgconfig/engineio-soup-1.0.pc" >"$work/pc/engineio-soup-1.0.pc"
  cat >"$work/soup.c" <<'EOF_C'
#include <engineio/engineio-soup.h>

int
main (void)
{
  g_autoptr(EngineIOServer) server = engine_io_server_new ();
  g_autoptr(SoupServer) soup = soup_server_new (NULL, NULL);
  g_autoptr(GError) error = NULL;
  gboolean ok = engine_io_server_attach_soup (server, soup, NULL, &error);

  engine_io_server_detach_soup (server, soup);
  engine_io_server_close (server);
  return ok ? 0 : 1;
}
EOF_C
  cc -Wall -Werror -o "$work/soup" "$work/soup.c" $(pkg-config --cflags --libs engineio-soup-1.0)
  LD_LIBRARY_PATH="$libdir" "$work/soup" || { echo "FAIL: the engineio-soup-1.0 example"; exit 1; }
  echo "engineio-soup-1.0: compiled, linked and ran"
elif [ "$soup" = enabled ]; then
  echo "FAIL: -Dsoup=enabled but engineio-soup-1.0.pc not installed"; exit 1
else
  echo "engineio-soup-1.0: not built (no libsoup 3)"
fi

# The installed tools and demos print "NAME VERSION" for --version.
version=$(pkg-config --modversion engineio-1.0)
for tool in engineio-echo socketio-echo engineio-bench engineio-chat socketio-chat; do
  [ -x "$root$configured/bin/$tool" ] || { echo "FAIL: $tool not installed"; exit 1; }
  out=$(LD_LIBRARY_PATH="$libdir" "$root$configured/bin/$tool" --version) ||
    { echo "FAIL: $tool --version exited $?"; exit 1; }
  [ "$out" = "$tool $version" ] || { echo "FAIL: $tool --version printed “$out”"; exit 1; }
done
echo "tools: --version prints NAME $version"

# Python over the installed typelib, if introspection was built.
typelib=$(find "$root" -name 'EngineIO-1.0.typelib' | head -n1)
introspection=$(/usr/bin/python3 -c '
import json, sys
opts = json.load(open(sys.argv[1]))
print(next(o["value"] for o in opts if o["name"] == "introspection"))
' "$build/meson-info/intro-buildoptions.json")
if [ "$introspection" != disabled ]; then
  [ -n "$typelib" ] || { echo "FAIL: typelib not installed"; exit 1; }
  GI_TYPELIB_PATH=$(dirname "$typelib") LD_LIBRARY_PATH="$libdir" /usr/bin/python3 -c '
import gi
gi.require_version("EngineIO", "1.0")
from gi.repository import EngineIO
s = EngineIO.Server(ping_interval=1234)
assert s.props.ping_interval == 1234
print("python: EngineIO", EngineIO.PacketType.MESSAGE, "from the installed typelib")
gi.require_version("SocketIO", "1.0")
from gi.repository import SocketIO
io = SocketIO.Server.new(s)
assert io.of("/x").get_name() == "/x"
print("python: SocketIO from the installed typelib")
'
  # The EngineIO and SocketIO overrides, installed into one gi/overrides dir of a
  # site-packages dir.
  overrides=$(find "$root" -path '*/gi/overrides/SocketIO.py' | head -n1)
  [ -n "$overrides" ] || { echo "FAIL: the SocketIO Python overrides are not installed"; exit 1; }
  [ -f "$(dirname "$overrides")/EngineIO.py" ] ||
    { echo "FAIL: the EngineIO Python overrides are not installed beside SocketIO's"; exit 1; }
  GI_TYPELIB_PATH=$(dirname "$typelib") LD_LIBRARY_PATH="$libdir" \
  PYTHONPATH=$(dirname "$(dirname "$(dirname "$overrides")")") /usr/bin/python3 -c '
import gi
gi.require_version("EngineIO", "1.0")
gi.require_version("SocketIO", "1.0")
from gi.repository import EngineIO, SocketIO
sio = SocketIO.Server(EngineIO.Server())
assert type(sio).__module__ == "gi.overrides.SocketIO", type(sio).__module__
e = EngineIO.Server()
assert type(e).__module__ == "gi.overrides.EngineIO", type(e).__module__
assert EngineIO.Packet.new_binary(EngineIO.PacketType.MESSAGE, b"\x00").value == b"\x00"
sio.on("message", lambda socket, *args: args)
args, atts = SocketIO.pack_args([{"b": b"x"}])
assert SocketIO.unpack_args(args, atts) == [{"b": b"x"}]
import sys
print("python: the EngineIO and SocketIO overrides from", sys.modules["gi.overrides.SocketIO"].__file__)
'
fi
echo ok
