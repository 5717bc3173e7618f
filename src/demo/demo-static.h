/* demo-static: what both demo chats (engineio-chat, socketio-chat) share
 *
 * One libmicrohttpd daemon that answers the engine's URLs through
 * <engineio/engineio-mhd.h> and serves the web page itself: the files of
 * one static directory (plain names, known types only, no way out of it),
 * plus a few single files from elsewhere (the client bundle, a stylesheet
 * shared with the other demo). Also finds those directories and files in
 * the build tree, the source tree or the installed copy.
 *
 * Demo code, not library code: it uses only the libraries' public API.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>
#include <microhttpd.h>
#include <engineio/engineio.h>

G_BEGIN_DECLS

typedef struct _DemoStatic DemoStatic;

/* Configure (demo_static_new(), demo_static_add_file()) before
 * demo_static_start(); after it the DemoStatic is read-only and read from
 * the daemon's threads, and must outlive the daemon. */
DemoStatic         *demo_static_new          (EngineIOServer  *engine,
                                              const char      *engine_path,
                                              const char      *static_dir);
void                demo_static_add_file     (DemoStatic      *self,
                                              const char      *url,
                                              const char      *path);
gboolean            demo_static_set_tls      (DemoStatic      *self,
                                              GTlsCertificate *certificate,
                                              GError         **error);
struct MHD_Daemon  *demo_static_start        (DemoStatic      *self,
                                              const char      *address,
                                              guint            port,
                                              guint           *out_port,
                                              GError         **error);
void                demo_static_free         (DemoStatic      *self);

/* Where a demo's page and client bundle are: the values of its
 * meson-generated config header. */
typedef struct
{
  const char *program;        /* "engineio-chat": the prefix of its errors */
  const char *build_dir;      /* where the demo programs are built */
  const char *source_dir;     /* the page in the source tree */
  const char *installed_dir;  /* the page installed */
  const char *client;         /* "engine.io-client": the bundle's package */
  const char *bundle_name;    /* "engine.io.min.js" */
  const char *build_bundle;   /* the bundle copied into the build tree */
  const char *source_bundle;  /* the bundle in tests/interop/node_modules */
} DemoPage;

int                 demo_locate_page         (const DemoPage  *page,
                                              char           **static_dir,
                                              char           **bundle);
void                demo_run_until_signal    (void);

char               *demo_find_dir            (const char      *build_dir,
                                              const char      *source_dir,
                                              const char      *installed_dir,
                                              const char      *file);
char               *demo_find_file           (const char      *const *candidates);
char               *demo_canonical_dir       (const char      *dir,
                                              GError         **error);
char               *demo_url_for             (const char      *address,
                                              guint            port);

G_END_DECLS
