"""The HTTP plumbing the tests' stand-in servers share (tests/llm_server.py, tests/hub_server.py)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class LocalServer:
    """An HTTP server on a free loopback port, served from a daemon thread: `start()`, `url`, `stop()`."""

    def _listen(self, handler: type) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
