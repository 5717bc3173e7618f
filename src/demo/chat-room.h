/* chat-room.h: the demo chat's room, independent of any transport
 *
 * The room knows nothing about Engine.IO: a #ChatSession is one client
 * connection, fed the client's text frames with chat_session_receive(), and
 * it answers through the #ChatSendFunc it was created with. engineio-chat
 * wires sessions to #EngineIOSocket; tests/test-chat.c wires them to arrays.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The protocol's limits (data/chat/README.md documents them). */
#define CHAT_MAX_FRAME_CHARS  2000  /* code points in one inbound frame */
#define CHAT_MAX_NAME_CHARS   32    /* code points in a name, after trimming */
#define CHAT_RATE_PER_SECOND  10    /* token bucket refill, frames per second */
#define CHAT_RATE_BURST       20    /* token bucket size */
#define CHAT_DEFAULT_HISTORY  50

typedef struct _ChatRoom    ChatRoom;
typedef struct _ChatSession ChatSession;

/**
 * ChatSendFunc:
 * @json: one server→client frame (a JSON object)
 * @user_data: the data given to chat_session_new()
 *
 * Delivers a frame to one client. It is called with the room's lock held
 * (so every client sees the room's events in the same order), from
 * whichever thread caused the event: it must not block and must not call
 * back into the room.
 */
typedef void (*ChatSendFunc) (const char *json,
                              gpointer    user_data);

/**
 * ChatClockFunc:
 * @user_data: the data given to chat_room_set_clocks()
 *
 * Returns: a time in microseconds
 */
typedef gint64 (*ChatClockFunc) (gpointer user_data);

ChatRoom    *chat_room_new          (guint          history_length);
ChatRoom    *chat_room_ref          (ChatRoom      *room);
void         chat_room_unref        (ChatRoom      *room);
void         chat_room_set_clocks   (ChatRoom      *room,
                                     ChatClockFunc  monotonic,
                                     ChatClockFunc  real,
                                     gpointer       user_data);
guint        chat_room_get_count    (ChatRoom      *room);
GStrv        chat_room_dup_users    (ChatRoom      *room);

ChatSession *chat_session_new       (ChatRoom      *room,
                                     ChatSendFunc   send,
                                     gpointer       user_data,
                                     GDestroyNotify destroy);
void         chat_session_receive   (ChatSession   *session,
                                     const char    *text);
void         chat_session_receive_binary (ChatSession *session);
char        *chat_session_dup_name  (ChatSession   *session);
void         chat_session_free      (ChatSession   *session);

gboolean     chat_normalize_name    (const char    *raw,
                                     char         **out_name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ChatRoom, chat_room_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ChatSession, chat_session_free)

G_END_DECLS
