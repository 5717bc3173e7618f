#!/usr/bin/env python3
# check-file-cycles.py: the file-cycles test (tests/meson.build)
#
# Which source files of the engine and of the Socket.IO library call each
# other in a circle, read off the object files (nm: the symbols each object
# defines and the ones it needs from another object of the static
# libraries given: the engine's, and libsocketio-internal.a, which holds
# the Socket.IO server's objects and its codec's). A set of files that
# reach each other through such calls is a cycle (a strongly connected
# component of the call graph, more than one file).
#
# Issue 14 asks for none. The Socket.IO files have none: any cycle among
# them fails as a new one, and neither have the engine's: the session's
# files are layers, the public object on top and each file below calling
# only the files under it (the queue reaches the event source's dispatch
# through engine_io_socket_upcalls); engineio-server.c, the GObject, is
# the top of the server's files (it makes the sockets' owner, and has the
# public functions that check its type), and the session table, the
# admission and the shutdown files call none of its functions. The
# session files call no server file (the server hands each socket an
# EngineIOSocketOwner), and the server calls neither the libmicrohttpd
# adapter (engine_io_server_listen() is the adapter's; the server stops
# its daemon through an EngineIOListenerClass) nor the host seam.
# KNOWN_CYCLES is empty: any cycle fails, naming its files.
#
# Usage: check-file-cycles.py [--nm NM] [--print] LIB.a [LIB.a ...]
#
# SPDX-License-Identifier: MIT

import argparse
import collections
import re
import subprocess
import sys

KNOWN_CYCLES = []

NM_LINE = re.compile(r'^(?:[^:]+):([^:]+):\s*[0-9a-fA-F]*\s+([A-Za-z])\s+(\S+)$')


def file_name(obj):
    """'runtime_engineio-socket.c.o' (meson's object name) -> 'engineio-socket'."""
    name = obj.rsplit('/', 1)[-1]
    name = re.sub(r'\.c\.o$|\.o$', '', name)
    return name.rsplit('_', 1)[-1]


def read_objects(nm, libs):
    objects = {}
    for lib in libs:
        out = subprocess.run([nm, '-A', lib], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            m = NM_LINE.match(line)
            if not m:
                continue
            obj, kind, sym = m.groups()
            o = objects.setdefault(file_name(obj), {'def': set(), 'und': set()})
            if kind == 'U':
                o['und'].add(sym)
            elif kind in 'TDBRV' or kind in 'W':
                o['def'].add(sym)
    return objects


def cycles(graph, nodes):
    """Tarjan's strongly connected components, iteratively; those of 2+ nodes."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    result.append(comp)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--nm', default='nm')
    ap.add_argument('--print', action='store_true', help='print the call graph between files')
    ap.add_argument('libs', nargs='+')
    args = ap.parse_args()

    objects = read_objects(args.nm, args.libs)
    definer = {}
    for name, o in objects.items():
        for sym in o['def']:
            definer[sym] = name
    graph = collections.defaultdict(set)
    for name, o in objects.items():
        graph[name]
        for sym in o['und']:
            target = definer.get(sym)
            if target is not None and target != name:
                graph[name].add(target)

    if args.print:
        for name in sorted(graph):
            print('%s -> %s' % (name, ', '.join(sorted(graph[name])) or '-'))

    found = cycles(graph, set(graph))
    print('%d source files, %d cycle(s)' % (len(graph), len(found)))
    ok = True
    for comp in found:
        print('cycle of %d files: %s' % (len(comp), ', '.join(sorted(comp))))
        if comp in KNOWN_CYCLES:
            continue
        ok = False
        overlapping = [known for known in KNOWN_CYCLES if comp & known]
        for known in overlapping:
            joined = sorted(comp - known)
            left = sorted(known - comp)
            if joined:
                print('  NEW in a known cycle: %s' % ', '.join(joined))
            if left:
                print('  left a known cycle (update KNOWN_CYCLES): %s' % ', '.join(left))
        if not overlapping:
            print('  a NEW cycle')
    for known in KNOWN_CYCLES:
        if not any(comp & known for comp in found):
            print('a known cycle is gone: remove it from KNOWN_CYCLES (%s)' % ', '.join(sorted(known)))
            ok = False
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
