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
struct MHD_Daemon  *demo_static_start        (DemoStatic      *self,
                                              const char      *address,
                                              guint            port,
                                              guint           *out_port,
                                              GError         **error);
void                demo_static_free         (DemoStatic      *self);

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
