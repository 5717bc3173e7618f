#!/usr/bin/env bash
# Builds Debian's own GLib (glib, gobject, gio, gmodule, gthread) with
# ThreadSanitizer into OUTDIR/prefix, for the TSan stage of tests/run-all.sh.
# Debian's libglib is not instrumented and its GMutex/GCond are futex-based,
# so against it TSan sees neither GLib's locks nor GObject's refcounts and
# reports hundreds of false races; against this build it sees them all.
#
# Usage: .ci/build-tsan-glib.sh [OUTDIR]   (default: build-tsan-glib in the repo)
# Environment: CC (default gcc; the project must be built with the same one).
# The source is the version of the installed libglib2.0-dev, fetched with
# `apt-get source` through a private sources list and lists directory under
# OUTDIR: the system's apt configuration is not touched. A prefix whose stamp
# (version, compiler, this script) matches is reused. Prints the prefix last.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/build-tsan-glib}
mkdir -p "$out"
out=$(cd "$out" && pwd)
prefix=$out/prefix
export CC=${CC:-gcc}

version=$(dpkg-query -W -f='${Version}' libglib2.0-dev)
stamp="glib2.0 $version; $($CC --version | head -n1); $(sha256sum "$repo/.ci/build-tsan-glib.sh" | cut -c1-16)"
if [ -f "$prefix/.stamp" ] && [ "$(cat "$prefix/.stamp")" = "$stamp" ]; then
  echo "build-tsan-glib: reusing $prefix ($stamp)" >&2
  echo "$prefix"
  exit 0
fi

# 1. Debian's source of that version, with its patches applied.
apt_dir=$out/apt
rm -rf "$apt_dir" "$out/src" "$out/build" "$prefix"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$out/src"
cat >"$apt_dir/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
EOF
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o APT::Sandbox::User=root -qq)
apt-get "${apt_opts[@]}" update >&2
cd "$out/src"
if ! apt-get "${apt_opts[@]}" source --download-only "glib2.0=$version" >/dev/null; then
  echo "build-tsan-glib: glib2.0 $version not found, taking the newest bookworm source" >&2
  apt-get "${apt_opts[@]}" source --download-only glib2.0 >/dev/null
fi
# apt checked the files against the signed Release file: no second signature check.
dpkg-source --no-check -x glib2.0_*.dsc glib >/dev/null
actual=$(sed -n 's/^Version: //p' glib2.0_*.dsc)
# GMutex and GCond on pthread mutexes and condition variables instead of raw
# futexes: TSan knows those, so its reports name the locks held and its
# lock-order (deadlock) detector sees GLib's locks, ours included.
grep -q '^#define USE_NATIVE_MUTEX$' glib/glib/gthread-posix.c
sed -i 's|^#define USE_NATIVE_MUTEX$|/* TSan build: pthread GMutex/GCond */|' glib/glib/gthread-posix.c

# 2. Configure, build, install: the libraries only (no tests, docs, translations).
meson setup "$out/build" "$out/src/glib" --prefix="$prefix" --libdir=lib \
  --wrap-mode=nodownload -Dbuildtype=debugoptimized \
  -Db_sanitize=thread -Db_lundef=false -Dc_link_args="-Wl,-rpath,$prefix/lib" \
  -Dtests=false -Dinstalled_tests=false -Dman=false -Dgtk_doc=false -Dnls=disabled \
  -Dlibmount=disabled -Dselinux=disabled -Dlibelf=disabled -Dsysprof=disabled \
  -Ddtrace=false -Dsystemtap=false >"$out/setup.log" 2>&1 ||
  { tail -n 40 "$out/setup.log" >&2; exit 1; }
meson compile -C "$out/build" >"$out/compile.log" 2>&1 ||
  { tail -n 40 "$out/compile.log" >&2; exit 1; }
meson install -C "$out/build" --quiet >"$out/install.log" 2>&1 ||
  { tail -n 40 "$out/install.log" >&2; exit 1; }
echo "$stamp" >"$prefix/.stamp"
[ "$actual" = "$version" ] || echo "build-tsan-glib: built $actual, the installed libglib2.0-dev is $version" >&2
echo "$prefix"
