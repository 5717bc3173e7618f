/* engineio-server-admission.c: handshake jobs (the admission hooks, the
 * session id, the new session) and asynchronous admission
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "engineio-server-impl-private.h"
#include "engineio-socket-private.h"
#include "engineio-http-rules-private.h"

/* Session ids */

/* 144 bits from the kernel's CSPRNG, base64url without padding (24 chars). */
static char *
generate_sid (void)
{
  guint8 random[18];
  gsize done = 0;
  char *sid;

  while (done < sizeof random)
    {
      ssize_t n = getrandom (random + done, sizeof random - done, 0);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          g_error ("getrandom() failed: %s", g_strerror (errno));
        }
      done += (gsize) n;
    }

  sid = g_base64_encode (random, sizeof random);
  for (char *p = sid; *p; p++)
    {
      if (*p == '+')
        *p = '-';
      else if (*p == '/')
        *p = '_';
    }
  return sid;
}

/* Handshakes */

static void handshake_job_finish (HandshakeJob *job);
static void admission_start (HandshakeJob               *job,
                             EngineIOAdmissionAsyncFunc  func,
                             gpointer                    data);

/* In the job's context, before it uses its request: FALSE if the close
 * took it (then the handshake is over: no longer pending, if @pending:
 * it still counted in pending_handshakes). */
static gboolean
handshake_job_reclaim (HandshakeJob *job,
                       gboolean      pending)
{
  EngineIOServer *self = job->server;
  gboolean taken;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  taken = job->taken;
  engine_io_server_unlist_job_locked (self, job);
  if (taken && pending)
    {
      g_assert (self->pending_handshakes > 0);
      self->pending_handshakes--;
      g_cond_broadcast (&self->cond);
    }
  ENGINE_IO_UNLOCK (&self->lock);
  return !taken;
}

static gboolean
handshake_job_claim (HandshakeJob *job)
{
  return handshake_job_reclaim (job, TRUE);
}

/* In the job's context, before application code that may block past a
 * server close's wait (the admission hook, the id function, a WebSocket
 * session's ::connection) while the job's request is suspended: the close
 * may take the request meanwhile (and answer it 503), as it takes one
 * whose job has not run; else libmicrohttpd aborts the process when the
 * close stops it with that connection suspended. The job reclaims it
 * after (handshake_job_reclaim()) and must not use it if taken. */
static void
handshake_job_expose (HandshakeJob *job)
{
  EngineIOServer *self = job->server;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  engine_io_server_list_job_locked (self, job);
  ENGINE_IO_UNLOCK (&self->lock);
}

GPtrArray *
engine_io_server_take_handshake_requests (EngineIOServer *self)
{
  GPtrArray *taken = g_ptr_array_new ();
  GList *link;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  while ((link = g_queue_pop_head_link (&self->handshake_jobs)) != NULL)
    {
      HandshakeJob *job = link->data;

      job->listed = FALSE;
      job->taken = TRUE;
      g_ptr_array_add (taken, job->req);
    }
  ENGINE_IO_UNLOCK (&self->lock);
  return taken;
}

void
engine_io_server_list_job_locked (EngineIOServer *self,
                                  HandshakeJob   *job)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->lock);
  if (job->listed)
    return;
  job->link.data = job;
  g_queue_push_tail_link (&self->handshake_jobs, &job->link);
  job->listed = TRUE;
}

void
engine_io_server_unlist_job_locked (EngineIOServer *self,
                                    HandshakeJob   *job)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->lock);
  if (!job->listed)
    return;
  g_queue_unlink (&self->handshake_jobs, &job->link);
  job->listed = FALSE;
}

gboolean
engine_io_handshake_job_cb (gpointer data)
{
  HandshakeJob *job = data;
  EngineIOServer *self = job->server;
  EngineIORequest *req = job->req;
  EngineIOAdmissionFunc admission;
  gpointer admission_data;
  EngineIOAdmissionAsyncFunc admission_async;
  gpointer admission_async_data;
  gboolean closing;
  gboolean refused = FALSE;

  if (!handshake_job_claim (job))
    return G_SOURCE_REMOVE;
  ENGINE_IO_LOCK (&self->lock, SERVER);
  admission = self->admission_func;
  admission_data = self->admission_data;
  admission_async = self->admission_async_func;
  admission_async_data = self->admission_async_data;
  closing = self->closing;
  ENGINE_IO_UNLOCK (&self->lock);

  if (!closing && admission != NULL)
    {
      handshake_job_expose (job);
      refused = !admission (self, job->handshake, admission_data);
      if (!handshake_job_claim (job))
        return G_SOURCE_REMOVE;  /* the close answered it meanwhile */
    }

  if (closing)
    engine_io_core_prepare_response (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
  else if (refused)
    engine_io_core_prepare_response (req, 403, ENGINE_IO_CODE_FORBIDDEN, "Forbidden");
  else if (admission_async != NULL && job->counted)
    {
      /* The admission owns the job from here; this source's destroy
       * notify leaves it alone. */
      job->detached = TRUE;
      /* Its request waits for the answer: the close takes it if this
       * context is blocked by then. */
      ENGINE_IO_LOCK (&self->lock, SERVER);
      engine_io_server_list_job_locked (self, job);
      ENGINE_IO_UNLOCK (&self->lock);
      admission_start (job, admission_async, admission_async_data);
      return G_SOURCE_REMOVE;
    }

  handshake_job_finish (job);
  return G_SOURCE_REMOVE;
}

/* In the session's context, once admitted (or refused: a response was
 * prepared). Does not free @job. */
static void
handshake_job_finish (HandshakeJob *job)
{
  EngineIOServer *self = job->server;
  EngineIORequest *req = job->req;
  EngineIOIdFunc id_func;
  gpointer id_data;
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  EngineIOConfig *config = self->config;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  id_func = self->id_func;
  id_data = self->id_data;
  ENGINE_IO_UNLOCK (&self->lock);

  if (req->prepared_body != NULL)
    ;  /* refused */
  else if (!job->version_ok)
    engine_io_core_prepare_response (req, 400, ENGINE_IO_CODE_UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version");
  else if (id_func != NULL)
    {
      handshake_job_expose (job);
      sid = id_func (self, job->handshake, id_data);
      if (!handshake_job_claim (job))
        return;  /* the close answered it meanwhile */
    }
  else
    sid = generate_sid ();

  /* The handshake stops being pending here, whatever became of it. */
  ENGINE_IO_LOCK (&self->lock, SERVER);
  if (sid == NULL)
    ;  /* refused above */
  else if (!engine_io_sid_is_valid (sid))
    {
      g_warning ("The id function returned an invalid session id (1 to 128 of A-Z a-z 0-9 - _ .)");
      engine_io_core_prepare_response (req, 500, ENGINE_IO_CODE_BAD_REQUEST, "Invalid session id generated");
    }
  else if (g_hash_table_contains (self->sockets, sid))
    {
      g_warning ("The id function returned the id of an open session");
      engine_io_core_prepare_response (req, 500, ENGINE_IO_CODE_BAD_REQUEST, "Duplicate session id generated");
    }
  else if (self->closing)
    engine_io_core_prepare_response (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
  else
    {
      socket = engine_io_socket_new (self, self->socket_owner, &self->counters, config, sid, job->handshake, job->loop);
      job->loop = NULL;
      g_hash_table_insert (self->sockets, g_strdup (sid), g_object_ref (socket));
      self->live_sessions++;
    }
  g_assert (self->pending_handshakes > 0);
  self->pending_handshakes--;
  g_cond_broadcast (&self->cond);
  ENGINE_IO_UNLOCK (&self->lock);

  if (socket == NULL)
    {
      engine_io_core_request_resume (req);  /* with the prepared refusal */
      return;
    }

  if (config->cookie_name != NULL)
    {
      GString *cookie = g_string_new (NULL);
      g_string_append_printf (cookie, "%s=%s", config->cookie_name, sid);
      if (config->cookie_path != NULL)
        g_string_append_printf (cookie, "; Path=%s", config->cookie_path);
      if (config->cookie_http_only)
        g_string_append (cookie, "; HttpOnly");
      if (config->cookie_same_site != NULL && config->cookie_same_site[0] != '\0')
        g_string_append_printf (cookie, "; SameSite=%s", config->cookie_same_site);
      req->set_cookie = g_string_free (cookie, FALSE);
    }

  if (engine_io_handshake_get_transport (job->handshake) == ENGINE_IO_TRANSPORT_WEBSOCKET)
    {
      /* The open packet will be the first frame once the connection is
       * switched (on the serving thread, when it resumes). */
      req->socket = g_object_ref (socket);
      req->kind = ENGINE_IO_REQUEST_UPGRADE;
      /* ::connection runs in there; the request waits for it, exposed to
       * the close. Taken, the close answered it (503), and its end reports
       * the upgrade failed (engine_io_server_request_finished()), which
       * closes the session. (A polling session's first poll is its waiting
       * poll already, which the close answers as any other.) */
      handshake_job_expose (job);
      engine_io_socket_start (socket, NULL);
      if (handshake_job_reclaim (job, FALSE))
        engine_io_core_request_resume (req);
      return;
    }

  /* Polling: the handshake GET is the session's first poll. */
  engine_io_socket_start (socket, req);
  return;
}

void
engine_io_handshake_job_free (gpointer data)
{
  HandshakeJob *job = data;

  if (job->detached)
    return;  /* its admission frees it */
  ENGINE_IO_LOCK (&job->server->lock, SERVER);
  /* A job whose source never ran (its context went away) */
  engine_io_server_unlist_job_locked (job->server, job);
  if (job->counted)
    {
      g_assert (job->server->pending_admissions > 0);
      job->server->pending_admissions--;
    }
  ENGINE_IO_UNLOCK (&job->server->lock);
  if (job->loop != NULL)
    engine_io_loop_release (job->loop);
  engine_io_handshake_unref (job->handshake);
  g_object_unref (job->server);
  g_free (job);
}

/* Asynchronous admission */

struct _EngineIOAdmission
{
  gatomicrefcount    ref_count;
  int                answered;   /* (atomic) 0 until the first answer wins */
  EngineIOServer    *server;     /* ref */
  EngineIOHandshake *handshake;  /* ref */
  HandshakeJob      *job;        /* owned (detached); the continuation takes it */
  GMainContext      *context;    /* ref: the session's, where the job continues */
  GSource           *timeout;    /* ref; set before the hook runs, cleared by the answer */
  /* Written by the winning answer before the continuation is attached. */
  gboolean           accepted;
  guint              status;
  int                code;
  char              *message;
};

G_DEFINE_BOXED_TYPE (EngineIOAdmission, engine_io_admission,
                     engine_io_admission_ref, engine_io_admission_unref)

/**
 * engine_io_admission_ref:
 * @admission: an admission
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): @admission
 */
EngineIOAdmission *
engine_io_admission_ref (EngineIOAdmission *admission)
{
  g_return_val_if_fail (admission != NULL, NULL);

  g_atomic_ref_count_inc (&admission->ref_count);
  return admission;
}

/**
 * engine_io_admission_unref:
 * @admission: (transfer full): an admission
 *
 * Drops a reference. Dropping yours does not answer the admission (the
 * server refuses it at #EngineIOServer:admission-timeout).
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_admission_unref (EngineIOAdmission *admission)
{
  g_return_if_fail (admission != NULL);

  if (!g_atomic_ref_count_dec (&admission->ref_count))
    return;
  if (admission->job != NULL)
    {
      admission->job->detached = FALSE;
      engine_io_handshake_job_free (admission->job);
    }
  g_clear_pointer (&admission->timeout, g_source_unref);
  g_main_context_unref (admission->context);
  engine_io_handshake_unref (admission->handshake);
  g_object_unref (admission->server);
  g_free (admission->message);
  g_free (admission);
}

/**
 * engine_io_admission_get_handshake:
 * @admission: an admission
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the handshake request (headers, query, remote
 *   address), valid as long as @admission
 */
EngineIOHandshake *
engine_io_admission_get_handshake (EngineIOAdmission *admission)
{
  g_return_val_if_fail (admission != NULL, NULL);

  return admission->handshake;
}

/* In the session's context: the rest of the handshake, with the answer. */
static gboolean
admission_continue_cb (gpointer data)
{
  EngineIOAdmission *admission = data;
  HandshakeJob *job = g_steal_pointer (&admission->job);

  if (!handshake_job_claim (job))
    {
      job->detached = FALSE;
      engine_io_handshake_job_free (job);
      return G_SOURCE_REMOVE;
    }
  if (!admission->accepted)
    engine_io_core_prepare_response (job->req, admission->status, admission->code, admission->message);
  else
    {
      gboolean closing;

      ENGINE_IO_LOCK (&admission->server->lock, SERVER);
      closing = admission->server->closing;
      ENGINE_IO_UNLOCK (&admission->server->lock);
      if (closing)
        engine_io_core_prepare_response (job->req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
    }
  handshake_job_finish (job);
  job->detached = FALSE;
  engine_io_handshake_job_free (job);
  return G_SOURCE_REMOVE;
}

/* Any thread. The first answer wins; TRUE if it was this one. */
static gboolean
admission_answer (EngineIOAdmission *admission,
                  gboolean           accepted,
                  guint              status,
                  int                code,
                  const char        *message)
{
  EngineIOServer *server = admission->server;
  GSource *timeout;
  GSource *source;

  if (!g_atomic_int_compare_and_exchange (&admission->answered, 0, 1))
    return FALSE;

  admission->accepted = accepted;
  admission->status = status;
  admission->code = code;
  admission->message = g_strdup (message);

  ENGINE_IO_LOCK (&server->lock, SERVER);
  timeout = g_steal_pointer (&admission->timeout);
  /* Its place is free from now, before its client can have the answer
   * (the continuation attached below gives it, and takes the job) and
   * come back. */
  if (admission->job->counted)
    {
      g_assert (server->pending_admissions > 0);
      server->pending_admissions--;
      admission->job->counted = FALSE;
    }
  ENGINE_IO_UNLOCK (&server->lock);
  if (timeout != NULL)
    {
      g_source_destroy (timeout);  /* drops its reference on @admission */
      g_source_unref (timeout);
    }

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, admission_continue_cb, engine_io_admission_ref (admission),
                         (GDestroyNotify) engine_io_admission_unref);
  g_source_set_static_name (source, "[engineio] admission answer");
  g_source_attach (source, admission->context);
  g_source_unref (source);

  ENGINE_IO_LOCK (&server->lock, SERVER);
  g_hash_table_remove (server->admissions, admission);  /* its reference */
  ENGINE_IO_UNLOCK (&server->lock);
  return TRUE;
}

/**
 * engine_io_admission_accept:
 * @admission: an admission
 *
 * Admits the handshake: the session opens (unless the server closed
 * meanwhile, or the handshake asked for a protocol version the server
 * does not speak).
 *
 * Thread-safe: may be called from any thread, once.
 *
 * Returns: %TRUE if this was the admission's answer, %FALSE if it had
 *   one already (an earlier call, its timeout, or the server's close)
 */
gboolean
engine_io_admission_accept (EngineIOAdmission *admission)
{
  g_return_val_if_fail (admission != NULL, FALSE);

  return admission_answer (admission, TRUE, 0, 0, NULL);
}

/**
 * engine_io_admission_refuse:
 * @admission: an admission
 * @status: the HTTP status, 400 to 599 (Node's engine.io uses 403)
 * @code: the Engine.IO error code of the JSON body (4 is `Forbidden`;
 *   any integer is sent as given)
 * @message: (nullable): the message of the JSON body, UTF-8; %NULL for
 *   `Forbidden`
 *
 * Refuses the handshake. The client gets @status with the body
 * `{"code":<code>,"message":"<message>"}` (the message JSON-escaped), as
 * Node's `allowRequest` callback gives it; #EngineIOServer::connection-error
 * reports it.
 *
 * Thread-safe: may be called from any thread, once.
 *
 * Returns: %TRUE if this was the admission's answer, %FALSE if it had
 *   one already (an earlier call, its timeout, or the server's close)
 */
gboolean
engine_io_admission_refuse (EngineIOAdmission *admission,
                            guint              status,
                            int                code,
                            const char        *message)
{
  g_return_val_if_fail (admission != NULL, FALSE);
  g_return_val_if_fail (status >= 400 && status <= 599, FALSE);
  g_return_val_if_fail (message == NULL || g_utf8_validate (message, -1, NULL), FALSE);

  return admission_answer (admission, FALSE, status, code, message != NULL ? message : "Forbidden");
}

static gboolean
admission_timeout_cb (gpointer data)
{
  EngineIOAdmission *admission = data;

  g_debug ("handshake from %s: no admission answer in time",
           engine_io_handshake_get_remote_address (admission->handshake));
  admission_answer (admission, FALSE, 503, ENGINE_IO_CODE_FORBIDDEN, "Admission timed out");
  return G_SOURCE_REMOVE;
}

/* In the session's context; @job is detached and becomes the admission's. */
static void
admission_start (HandshakeJob               *job,
                 EngineIOAdmissionAsyncFunc  func,
                 gpointer                    data)
{
  EngineIOServer *self = job->server;
  EngineIOAdmission *admission = g_new0 (EngineIOAdmission, 1);
  gboolean closing;

  g_atomic_ref_count_init (&admission->ref_count);
  admission->server = g_object_ref (self);
  admission->handshake = engine_io_handshake_ref (job->handshake);
  admission->job = job;
  admission->context = g_main_context_ref (engine_io_loop_get_context (job->loop));
  admission->timeout = g_timeout_source_new (self->config->admission_timeout);
  g_source_set_callback (admission->timeout, admission_timeout_cb, engine_io_admission_ref (admission),
                         (GDestroyNotify) engine_io_admission_unref);
  g_source_set_static_name (admission->timeout, "[engineio] admission deadline");
  g_source_attach (admission->timeout, admission->context);

  /* Registered for the close, which refuses what is still pending. */
  ENGINE_IO_LOCK (&self->lock, SERVER);
  closing = self->closing;
  g_hash_table_add (self->admissions, engine_io_admission_ref (admission));
  ENGINE_IO_UNLOCK (&self->lock);

  if (closing)
    admission_answer (admission, FALSE, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
  else
    func (self, admission, data);
  engine_io_admission_unref (admission);
}

/* Any thread: refuses every admission still waiting (server close). */
void
engine_io_server_refuse_admissions (EngineIOServer *self)
{
  g_autoptr(GPtrArray) pending = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_admission_unref);
  GHashTableIter iter;
  gpointer key;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  g_hash_table_iter_init (&iter, self->admissions);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (pending, engine_io_admission_ref (key));
  ENGINE_IO_UNLOCK (&self->lock);

  for (guint i = 0; i < pending->len; i++)
    admission_answer (g_ptr_array_index (pending, i), FALSE, 503, ENGINE_IO_CODE_FORBIDDEN,
                      "Server shutting down");
}

