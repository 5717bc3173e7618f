/* engineio-lock.c: the lock-order check of -Dlock_checks=true builds
 *
 * See engineio-lock-private.h for the order and what each lock guards.
 * Each thread records the locks of ours it holds (a few at most); taking a
 * lock whose rank is not above every recorded one is a bug that could
 * deadlock with a thread that nests them the other way, so it aborts at
 * once with both names, whether or not the other thread is there today.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-lock-private.h"

#if ENGINE_IO_LOCK_CHECKS

#define MAX_HELD 16

typedef struct
{
  GMutex           *mutex;
  EngineIOLockRank  rank;
  const char       *name;
} HeldLock;

static __thread HeldLock held[MAX_HELD];
static __thread guint n_held;

static const char *
rank_name (EngineIOLockRank rank)
{
  switch (rank)
    {
    case ENGINE_IO_LOCK_RANK_BROADCAST: return "server broadcast lock";
    case ENGINE_IO_LOCK_RANK_SERVER:    return "server lock";
    case ENGINE_IO_LOCK_RANK_SESSION:   return "session state lock";
    case ENGINE_IO_LOCK_RANK_WATCHER:   return "HTTP watcher lock";
    case ENGINE_IO_LOCK_RANK_RECV:      return "session receive lock";
    case ENGINE_IO_LOCK_RANK_LOOP_POOL: return "loop pool lock";
    case ENGINE_IO_LOCK_RANK_RATE:      return "server rate lock";
    case ENGINE_IO_LOCK_RANK_ERRORS:    return "server errors lock";
    case ENGINE_IO_LOCK_RANK_USER_DATA: return "session user data lock";
    case ENGINE_IO_LOCK_RANK_READ_BUFFERS: return "spare read buffers lock";
    default:                            return "unknown lock";
    }
}

void
engine_io_lock_acquire (GMutex           *mutex,
                        EngineIOLockRank  rank,
                        const char       *name)
{
  for (guint i = 0; i < n_held; i++)
    {
      if (held[i].mutex == mutex)
        g_error ("lock order: %s (%s, rank %d) taken again by the thread that holds it",
                 name, rank_name (rank), rank);
      if (held[i].rank >= rank)
        g_error ("lock order: %s (%s, rank %d) taken while holding %s (%s, rank %d)",
                 name, rank_name (rank), rank,
                 held[i].name, rank_name (held[i].rank), held[i].rank);
    }
  if (n_held == MAX_HELD)
    g_error ("lock order: %s taken with %u locks held", name, n_held);

  g_mutex_lock (mutex);
  held[n_held].mutex = mutex;
  held[n_held].rank = rank;
  held[n_held].name = name;
  n_held++;
}

void
engine_io_lock_release (GMutex     *mutex,
                        const char *name)
{
  guint i = n_held;

  while (i > 0 && held[i - 1].mutex != mutex)
    i--;
  if (i == 0)
    g_error ("lock order: %s released by a thread that does not hold it", name);
  for (; i < n_held; i++)
    held[i - 1] = held[i];
  n_held--;
  g_mutex_unlock (mutex);
}

void
engine_io_lock_assert_held (GMutex     *mutex,
                            const char *name,
                            const char *where)
{
  for (guint i = 0; i < n_held; i++)
    if (held[i].mutex == mutex)
      return;
  g_error ("lock order: %s() needs %s held", where, name);
}

#endif
