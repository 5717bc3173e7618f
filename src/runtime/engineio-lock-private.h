/* engineio-lock-private.h: the engine's locks, their order, and its check
 *
 * Every GMutex of the engine (the runtime and the adapters) is taken and
 * released through ENGINE_IO_LOCK() and ENGINE_IO_UNLOCK() with its rank
 * below. A thread may take a lock only while every lock it holds has a
 * lower rank: ranks are the nesting order, outermost first.
 *
 *   rank  lock                              guards
 *   1     EngineIOServer.broadcast_lock     one broadcast's snapshot to its last enqueue
 *   2     EngineIOServer.lock               the session table, counts, closing state, hooks
 *   3     EngineIOSocket.state_lock         a session's state, its outbound queue, its
 *                                           transport fields (the session lock)
 *   4     EngineIOHttpDaemon.lock           the watcher's set of waiting polls
 *   5     EngineIOSocket.recv_lock          a session's receive queue and its waiters
 *   6     EngineIOLoopPool.lock             loop threads and their users
 *   7     EngineIOServer.rate_lock          the handshake rate table
 *   8     EngineIOServer.errors_lock        ::connection-error reports to deliver
 *   9     EngineIOSocket.user_data_lock     the application's data
 *   10    read_buffer_lock (engineio-websocket.c)  the spare read buffers of sessions'
 *                                           own threads
 *
 * Locks of the same rank never nest (no thread holds two sessions' locks,
 * or two servers'). Ranks 4 and up take no lock of ours, but for the
 * session lock's recv_lock (3 then 5); the order between ranks that never
 * nest is a choice, kept total so that the check is simple.
 *
 * Locks below us, taken with ours held, all leaves for us: libmicrohttpd's
 * own (MHD_suspend_connection()/MHD_resume_connection() under a session
 * lock), GMainContext's (g_source_attach(), g_main_context_wakeup() under a
 * session lock), the inbound GAsyncQueue's (an event posted under a session
 * lock), GObject's signal and type locks (no handler runs under ours), the
 * codecs' deflate pool lock. None of them calls back into code that takes
 * one of ours, except libmicrohttpd's notification of a finished upgraded
 * connection, which for that reason takes no session lock.
 *
 * With -Dlock_checks=true, each thread keeps a record of the locks it holds
 * and every ENGINE_IO_LOCK() checks the rank of the one it takes against
 * them (g_error() naming both when the order is broken), every
 * ENGINE_IO_UNLOCK() that the lock is held, and ENGINE_IO_LOCK_ASSERT_HELD()
 * (at the top of the `_locked` functions) that it is. Without it (the
 * default) the macros are g_mutex_lock() and g_mutex_unlock() and nothing
 * else.
 *
 * A g_cond_wait() on a checked lock needs nothing more: the record keeps
 * the lock as held while the thread waits, and the thread takes nothing
 * while it waits.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

#include "config.h"

G_BEGIN_DECLS

typedef enum
{
  ENGINE_IO_LOCK_RANK_BROADCAST = 1,
  ENGINE_IO_LOCK_RANK_SERVER,
  ENGINE_IO_LOCK_RANK_SESSION,
  ENGINE_IO_LOCK_RANK_WATCHER,
  ENGINE_IO_LOCK_RANK_RECV,
  ENGINE_IO_LOCK_RANK_LOOP_POOL,
  ENGINE_IO_LOCK_RANK_RATE,
  ENGINE_IO_LOCK_RANK_ERRORS,
  ENGINE_IO_LOCK_RANK_USER_DATA,
  ENGINE_IO_LOCK_RANK_READ_BUFFERS,
} EngineIOLockRank;

#if ENGINE_IO_LOCK_CHECKS

void engine_io_lock_acquire     (GMutex           *mutex,
                                 EngineIOLockRank  rank,
                                 const char       *name);
void engine_io_lock_release     (GMutex           *mutex,
                                 const char       *name);
void engine_io_lock_assert_held (GMutex           *mutex,
                                 const char       *name,
                                 const char       *where);

#define ENGINE_IO_LOCK(mutex, rank) \
  engine_io_lock_acquire ((mutex), ENGINE_IO_LOCK_RANK_##rank, #mutex)
#define ENGINE_IO_UNLOCK(mutex) \
  engine_io_lock_release ((mutex), #mutex)
#define ENGINE_IO_LOCK_ASSERT_HELD(mutex) \
  engine_io_lock_assert_held ((mutex), #mutex, G_STRFUNC)

#else

#define ENGINE_IO_LOCK(mutex, rank) g_mutex_lock (mutex)
#define ENGINE_IO_UNLOCK(mutex) g_mutex_unlock (mutex)
#define ENGINE_IO_LOCK_ASSERT_HELD(mutex) G_STMT_START { } G_STMT_END

#endif

G_END_DECLS
