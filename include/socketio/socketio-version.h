/* socketio-version.h: the export decorator of socketio-1.0
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if defined(_WIN32) && !defined(__GNUC__)
# define _SOCKET_IO_EXPORT __declspec(dllexport)
#else
# define _SOCKET_IO_EXPORT __attribute__((visibility ("default")))
#endif

#define SOCKET_IO_AVAILABLE_IN_ALL _SOCKET_IO_EXPORT extern
