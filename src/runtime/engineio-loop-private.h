/* engineio-loop-private.h: which thread iterates a session's main context
 *
 * A small piece on purpose: sessions ask a pool for a loop, use its
 * GMainContext for every timer, transport event and application callback,
 * and give it back when they end. The pool has three modes:
 *
 *  - one thread per session (n_threads == 0, the default): acquire()
 *    starts a thread with a fresh GMainContext; release() of its only user
 *    quits it and the thread ends by itself (never joined by anyone);
 *  - pooled (n_threads > 0): that many threads, started lazily, shared
 *    round-robin by least load; they end at engine_io_loop_pool_shutdown();
 *  - external: every session uses one GMainContext the application iterates
 *    (no thread of ours at all).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _EngineIOLoop     EngineIOLoop;
typedef struct _EngineIOLoopPool EngineIOLoopPool;

/* Descriptors a GMainContext holds: its GWakeup (an eventfd on Linux, a
 * pipe elsewhere). */
#ifdef __linux__
#define ENGINE_IO_CONTEXT_DESCRIPTORS 1
#else
#define ENGINE_IO_CONTEXT_DESCRIPTORS 2
#endif

/* @descriptors: (nullable): a count (atomic) that every context the pool
 * makes adds ENGINE_IO_CONTEXT_DESCRIPTORS to while it exists. */
EngineIOLoopPool *engine_io_loop_pool_new          (guint             n_threads,
                                                    GMainContext     *external,
                                                    guint64          *descriptors);
void              engine_io_loop_pool_free         (EngineIOLoopPool *pool);
EngineIOLoop     *engine_io_loop_pool_acquire      (EngineIOLoopPool *pool);
void              engine_io_loop_pool_shutdown     (EngineIOLoopPool *pool,
                                                    gint64            timeout_us);

void              engine_io_loop_release           (EngineIOLoop     *loop);
GMainContext     *engine_io_loop_get_context       (EngineIOLoop     *loop);
gboolean          engine_io_in_loop_thread         (void);
/* A thread of a libmicrohttpd daemon we started (engineio-http-daemon.c
 * marks them): not one from which to stop one. */
void              engine_io_mark_daemon_thread     (void);
gboolean          engine_io_in_daemon_thread       (void);
gboolean          engine_io_in_session_thread      (void);

G_END_DECLS
