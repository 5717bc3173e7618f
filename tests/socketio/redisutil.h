/* redisutil.h: a real redis-server for the tests of the Redis adapter and
 * emitter (test-sio-redis.c, test-sio-emitter.c, test-sio-redis-attack.c):
 * started on a loopback port it cannot pick itself, waited for, spoken to
 * with raw RESP, and stopped.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

#include "socketio/socketio.h"

G_BEGIN_DECLS

/* Whether redis-server is on PATH; if not, adds the test @skip_path,
 * skipped with the reason (for main(), before the tests that need it). */
gboolean  redis_available       (const char        *skip_path);

/* A TCP socket bound to 127.0.0.1 on a port the kernel picks (stored in
 * @port), listening if @listening: a peer that accepts connections (the
 * listen backlog) but never answers, or, closed, a free port. */
GSocket  *redis_loopback_socket (gboolean           listening,
                                 guint             *port);
/* A loopback port free when called: a socket bound to 127.0.0.1 port 0,
 * then closed (redis-server cannot bind port 0). */
guint     redis_free_port       (void);
/* Starts redis-server on 127.0.0.1:*@port without persistence and waits
 * (up to 10 s; the test fails otherwise) until it accepts connections and
 * is the process answering there (its INFO's process_id). With *@port 0,
 * picks a free port, stored in @port, and picks another if a concurrent
 * test process takes it first; otherwise (a restart) *@port must still be
 * free. Spawned and reaped by hand: GSubprocess's wait races with GLib's
 * child watch thread in 2.74 (a TSan report inside GLib). */
GPid      redis_start           (guint             *port);
/* Spawns redis-server on @port and waits (up to 10 s) until it, not
 * another process, answers there. Returns its pid, or 0 (reaped) when it
 * exited first: the port was taken by the time it bound. */
GPid      redis_try_start       (guint              port,
                                 const char *const *extra_args);
/* As redis_start(), with @extra_args (NULL-terminated, may be NULL)
 * appended to redis-server's command line. */
GPid      redis_start_full      (guint             *port,
                                 const char *const *extra_args);
/* SIGKILLs and reaps @pid; nothing when @pid is 0. */
void      redis_stop            (GPid               pid);
/* Sends one inline command to the Redis on @port and checks its +OK. */
void      redis_command         (guint              port,
                                 const char        *command);
/* PUBLISH @channel @payload with raw RESP; the number of receivers. */
gint64    redis_publish         (guint              port,
                                 const char        *channel,
                                 const void        *payload,
                                 gsize              length);
/* Polls until @adapter (a SocketIORedisAdapter) is connected (@want TRUE)
 * or disconnected (@want FALSE), up to @timeout_ms (scaled); whether it
 * got there. */
gboolean  redis_wait_connected  (SocketIOAdapter   *adapter,
                                 gboolean           want,
                                 guint              timeout_ms);
/* Runs @func(@data) in @n_threads threads at once and joins them; each
 * returns NULL or a failure (a string, freed here) that fails the test.
 * json-glib's types are registered first: json-glib's g_once for them is
 * invisible to CI's TSan (json-glib not instrumented), which took two
 * threads' first use of one for a race in GLib's type system. */
void      redis_run_json_threads (const char        *name,
                                  GThreadFunc        func,
                                  gpointer           data,
                                  guint              n_threads);

G_END_DECLS
