"""The other end of hakit's webhook notifications, for the tests: an HTTP server that keeps
every JSON document POSTed to it, in order."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """Listens on ``address`` (a free port); ``got``: the documents received; ``close()`` ends it."""

    def __init__(self, address: str) -> None:
        got: list[dict[str, Any]] = []
        self.got = got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.port}/hakit"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
