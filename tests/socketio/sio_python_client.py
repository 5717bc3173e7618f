"""python-socketio 5.7 clients that keep the order of the messages they receive.

Shared by test-sio-python.py and interop-sio-python.py. python-engineio 4.3.4's Client runs
each 'message' handler on a new thread (`_trigger_event(..., run_async=True)`), and
socketio.Client assembles a binary packet from the messages that follow its header: the
threads race, and an attachment handled before its header is decoded as a packet of its own
(`ValueError: invalid literal for int() with base 10: b'\\x01'`) or paired with the wrong
packet. These deliver messages on the client's read thread, in the order received.

Also: its polling POST body is a str that http.client encodes as Latin-1 (a character above
U+00FF raises in the write thread): POST bodies are encoded as UTF-8 here.

SPDX-License-Identifier: MIT
"""

import engineio
import socketio


class InOrderEngineIOClient(engineio.Client):
    """engineio.Client delivering messages in order on its read thread, POSTing UTF-8."""

    def _trigger_event(self, event, *args, **kwargs):
        if event == 'message':
            kwargs['run_async'] = False
        return super()._trigger_event(event, *args, **kwargs)

    def _send_request(self, method, url, headers=None, body=None, timeout=None):
        if isinstance(body, str):
            body = body.encode('utf-8')
        return super()._send_request(method, url, headers=headers, body=body, timeout=timeout)


class InOrderClient(socketio.Client):
    """socketio.Client on InOrderEngineIOClient."""

    def _engineio_client_class(self):
        return InOrderEngineIOClient
