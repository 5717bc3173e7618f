/* tool-cli.h: the command-line conventions shared by the tools and demos
 * (engineio-echo, socketio-echo, engineio-bench, engineio-chat,
 * socketio-chat): `--version` prints "NAME VERSION" and exits 0; a stray
 * positional argument and an out-of-range option are usage errors (exit 2)
 * whose message names the argument or the option and its range.
 *
 * Not installed; header-only so each tool keeps its own log domain.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <stdio.h>

#include <gio/gio.h>

/* The exit status of a usage error. */
#define TOOL_EXIT_USAGE 2

/* Prints "NAME VERSION" on stdout for --version. */
static inline int
tool_print_version (const char *name,
                    const char *version)
{
  printf ("%s %s\n", name, version);
  return fflush (stdout) == 0 ? 0 : 1;
}

/* After g_option_context_parse(): FALSE (with a message) if a positional
 * argument is left. GOption leaves the "--" that ends the options in argv,
 * after the positional arguments before it: a first "--" is not one. */
static inline gboolean
tool_check_no_arguments (const char *name,
                         int         argc,
                         char      **argv)
{
  int first = argc > 1 && g_str_equal (argv[1], "--") ? 2 : 1;

  if (argc <= first)
    return TRUE;
  g_printerr ("%s: unexpected argument “%s” (see --help)\n", name, argv[first]);
  return FALSE;
}

/* FALSE (with "NAME: --OPTION must be MIN..MAX", or "at least MIN" when max
 * is G_MAXINT64) if value is outside [min, max]. */
static inline gboolean
tool_check_range (const char *name,
                  const char *option,
                  gint64      value,
                  gint64      min,
                  gint64      max)
{
  if (value >= min && value <= max)
    return TRUE;
  if (max == G_MAXINT64)
    g_printerr ("%s: --%s must be at least %" G_GINT64_FORMAT "\n", name, option, min);
  else
    g_printerr ("%s: --%s must be %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT "\n",
                name, option, min, max);
  return FALSE;
}

/* The same for a floating-point option (NaN is out of every range). */
static inline gboolean
tool_check_range_double (const char *name,
                         const char *option,
                         double      value,
                         double      min,
                         double      max)
{
  if (value >= min && value <= max)
    return TRUE;
  g_printerr ("%s: --%s must be %.15g..%.15g\n", name, option, min, max);
  return FALSE;
}

/* --tls-cert FILE --tls-key FILE: both or neither. Returns 0 with *@out
 * set (or left NULL without the options), TOOL_EXIT_USAGE (with a message)
 * for one without the other, 1 (with a message) when the files do not
 * load. */
static inline int
tool_load_tls (const char       *name,
               const char       *cert_file,
               const char       *key_file,
               GTlsCertificate **out)
{
  GError *error = NULL;

  *out = NULL;
  if (cert_file == NULL && key_file == NULL)
    return 0;
  if (cert_file == NULL || key_file == NULL)
    {
      g_printerr ("%s: --tls-cert and --tls-key go together\n", name);
      return TOOL_EXIT_USAGE;
    }
  *out = g_tls_certificate_new_from_files (cert_file, key_file, &error);
  if (*out == NULL)
    {
      g_printerr ("%s: cannot load the TLS certificate %s with key %s: %s\n",
                  name, cert_file, key_file, error->message);
      g_error_free (error);
      return 1;
    }
  return 0;
}
