#!/usr/bin/env python3
# check-core-layering.py: the core-layering test (tests/meson.build)
#
# src/core/ (the engineio-core static library) is sans-I/O and depends on
# GLib and GObject only (the rules are at the top of src/meson.build). This
# fails, naming file and line or symbol, when:
#
# 1. a file under src/core/ includes or names libmicrohttpd, wslay, zlib,
#    json-glib, GIO (GSocket and the rest), sockets, threads, locks, a main
#    context or a main-loop source, or the clock (comments and string
#    literals are not looked at); a file under src/codecs/ does the same,
#    less zlib, GMutex and GPrivate (the zlib stream caches);
# 2. the core library is built from a file outside src/core/, or one of its
#    files includes, through any chain of headers, one of GIO,
#    libmicrohttpd, wslay, zlib, json-glib or the socket headers (the
#    compiler's own -M list, with the core library's flags from
#    compile_commands.json);
# 3. the core library refers to a symbol that neither itself, GLib,
#    GObject nor the C library defines (compiler and sanitizer runtime
#    symbols, `__`-prefixed, aside), or to one of the GLib functions of 1
#    (through a macro, say).
#
# Usage: check-core-layering.py --source-root DIR --build-root DIR
#          --core-lib LIB.a --allowed-lib LIB.so [--allowed-lib LIB.so ...]
#          [--nm NM]
#
# SPDX-License-Identifier: MIT

import argparse
import json
import os
import re
import shlex
import subprocess
import sys

# (what, regex) on code without comments and string literals.
COMMON_RULES = [
    ('libmicrohttpd', r'\bmicrohttpd\b|\bMHD_\w+'),
    ('wslay', r'\bwslay\w*'),
    ('json-glib', r'json-glib|\bJson[A-Z]\w*|\bjson_\w+'),
    ('GIO', r'<gio/|\bGSocket\w*|\bg_socket_\w+|\bGInetAddress\b|\bGIOStream\b|\bGInputStream\b|\bGOutputStream\b'),
    ('sockets', r'<sys/socket\.h>|<netinet/|<arpa/inet\.h>|<netdb\.h>|\bsocket\s*\(|\bsetsockopt\b|\brecv\s*\(|\bsend\s*\('),
    ('a main context', r'\bGMainContext\b|\bg_main_context_\w+|\bGMainLoop\b|\bg_main_loop_\w+'),
    ('a main-loop source', r'\bGSource\b|\bg_source_\w+|\bg_timeout_\w+|\bg_idle_\w+|\bg_child_watch_\w+'),
    ('threads', r'\bGThread\w*|\bg_thread_\w+|<pthread\.h>|\bpthread_\w+|\bGAsyncQueue\b|\bg_async_queue_\w+'),
    ('the clock', r'\bg_get_monotonic_time\b|\bg_get_real_time\b|\bGTimer\b|\bg_timer_\w+|\bGDateTime\b|\bg_date_time_\w+|\bclock_gettime\b|\bgettimeofday\b|\btime\s*\(|\bg_usleep\b'),
    ('locks', r'\bGRecMutex\b|\bg_rec_mutex_\w+|\bGRWLock\b|\bg_rw_lock_\w+|\bGCond\b|\bg_cond_\w+'),
]
CORE_ONLY_RULES = [
    ('zlib', r'<zlib\.h>|\bz_stream\b|\b(?:deflate|inflate)\w*\s*\('),
    ('a mutex', r'\bGMutex\b|\bg_mutex_\w+|\bGMutexLocker\b'),
    ('thread-local state', r'\bGPrivate\b|\bg_private_\w+'),
]

# GLib functions the core library must not call (rule 1, on the symbols).
FORBIDDEN_SYMBOLS = re.compile(
    r'^(?:g_main_context_|g_main_loop_|g_source_|g_timeout_|g_idle_|g_child_watch_|'
    r'g_mutex_|g_rec_mutex_|g_rw_lock_|g_cond_|g_private_|g_thread_|g_async_queue_|'
    r'g_get_monotonic_time$|g_get_real_time$|g_timer_|g_date_time_|g_usleep$|'
    r'g_socket_|g_inet_)')

# Headers no file of src/core/ may include, directly or not.
FORBIDDEN_HEADERS = re.compile(
    r'/gio/|/gio-unix-2\.0/|microhttpd\.h$|/wslay/|/zlib\.h$|/json-glib/|'
    r'/sys/socket\.h$|/netinet/|/arpa/inet\.h$|/netdb\.h$|/hiredis/|/msgpack')

COMMENT_OR_STRING = re.compile(
    r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def blank(match):
    # Keeps the newlines, so line numbers stay right; keeps `#include "x"`.
    text = match.group(0)
    if text.startswith('"'):
        return text if text.endswith('.h"') else '""'
    return re.sub(r'[^\n]', ' ', text)


def check_sources(root, subdir, rules):
    problems = []
    directory = os.path.join(root, 'src', subdir)
    for name in sorted(os.listdir(directory)):
        if not name.endswith(('.c', '.h')):
            continue
        path = os.path.join(directory, name)
        with open(path, encoding='utf-8') as f:
            code = COMMENT_OR_STRING.sub(blank, f.read())
        for number, line in enumerate(code.split('\n'), 1):
            for what, regex in rules:
                found = re.search(regex, line)
                if found:
                    problems.append('src/%s/%s:%d: %s (%s) is not allowed in src/%s/'
                                    % (subdir, name, number, found.group(0).strip(), what, subdir))
    return problems


def check_includes(source_root, build_root, core_lib):
    problems = []
    core_dir = os.path.basename(core_lib) + '.p'
    with open(os.path.join(build_root, 'compile_commands.json'), encoding='utf-8') as f:
        commands = json.load(f)
    checked = 0
    for entry in commands:
        source = os.path.realpath(os.path.join(entry['directory'], entry['file']))
        if core_dir not in entry['output'].split('/'):
            continue
        if os.path.dirname(source) != os.path.join(os.path.realpath(source_root), 'src', 'core'):
            problems.append('%s is built from %s, which is not under src/core/'
                            % (os.path.basename(core_lib), entry['file']))
            continue
        args, skip = [], False
        for arg in shlex.split(entry['command']):
            if skip:
                skip = False
            elif arg in ('-o', '-MQ', '-MF', '-MT'):
                skip = True
            elif arg not in ('-c', '-MD', '-MMD'):
                args.append(arg)
        result = subprocess.run(args + ['-M'], cwd=entry['directory'],
                                capture_output=True, text=True)
        if result.returncode != 0:
            problems.append('%s: the compiler failed to list its headers: %s'
                            % (entry['file'], result.stderr.strip()[:500]))
            continue
        checked += 1
        seen = set()   # the first header of each kind only (not GIO's 300)
        for header in result.stdout.replace('\\\n', ' ').split()[1:]:
            found = FORBIDDEN_HEADERS.search(header)
            if found and found.group(0) not in seen:
                seen.add(found.group(0))
                problems.append('src/core/%s includes %s (through its headers)'
                                % (os.path.basename(source), os.path.normpath(header)))
    if checked == 0:
        problems.append('compile_commands.json lists no source of src/core/ in %s' % core_lib)
    return problems


def nm(nm_prog, *args):
    out = subprocess.run([nm_prog, '-P', *args], check=True, capture_output=True, text=True).stdout
    symbols = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and not line.endswith(':'):
            symbols.append((fields[0].split('@')[0], fields[1]))
    return symbols


def check_library(nm_prog, core_lib, allowed_libs):
    problems = []
    symbols = nm(nm_prog, '-g', core_lib)
    defined = {name for name, kind in symbols if kind not in 'Uwv'}
    undefined = {name for name, kind in symbols if kind == 'U'} - defined

    provided = set()
    for lib in allowed_libs:
        provided.update(name for name, kind in nm(nm_prog, '-D', '--defined-only', lib))
    if 'g_free' not in provided or 'g_type_register_static' not in provided:
        problems.append('nm found no GLib/GObject symbols in %s' % ', '.join(allowed_libs))

    for name in sorted(undefined):
        if FORBIDDEN_SYMBOLS.match(name):
            problems.append('%s calls %s' % (os.path.basename(core_lib), name))
        elif name.startswith('__') or name == '_GLOBAL_OFFSET_TABLE_':
            continue  # compiler runtime (libgcc, compiler-rt) and sanitizers
        elif name not in provided:
            problems.append('%s needs %s, which neither GLib, GObject nor the C library defines'
                            % (os.path.basename(core_lib), name))
    if not undefined:
        problems.append('nm found no undefined symbols in %s' % core_lib)
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--source-root', required=True)
    parser.add_argument('--build-root', required=True)
    parser.add_argument('--core-lib', required=True)
    parser.add_argument('--allowed-lib', action='append', required=True)
    parser.add_argument('--nm', default='nm')
    args = parser.parse_args()

    problems = check_sources(args.source_root, 'core', COMMON_RULES + CORE_ONLY_RULES)
    problems += check_sources(args.source_root, 'codecs', COMMON_RULES)
    problems += check_includes(args.source_root, args.build_root, args.core_lib)
    problems += check_library(args.nm, args.core_lib, args.allowed_lib)

    for problem in problems:
        print(problem)
    if problems:
        print('core-layering: %d problem(s); the rules are at the top of src/meson.build'
              % len(problems))
        return 1
    print('core-layering: src/core/ and src/codecs/ keep their rules; %s links GLib, GObject and libc only'
          % os.path.basename(args.core_lib))
    return 0


if __name__ == '__main__':
    sys.exit(main())
