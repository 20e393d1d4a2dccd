"""A local HTTP test double of an OpenAI-compatible chat endpoint.

Each request is answered by the next behaviour in a script: ``"ok"``, ``"500"``, ``"429"``,
``"400"``, ``"badjson"`` (200 with a broken body), ``"slow"`` (sleeps past the client's
timeout) or a callable returning ``(status, body)`` (a ``str`` body is sent as plain text).
``GET /v1/models`` answers ``models`` (a list of model cards; ``None``: 404) and
``GET /props`` answers ``props`` (``None``: 404), as llama.cpp's server does. Runs on
127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(content: str = "hello", tool_calls: list | None = None) -> dict:
    msg = {"role": "assistant", "content": content}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return {
        "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


class FakeOpenAI:
    def __init__(self, script: list[str | Callable] | None = None, *, default: str | Callable = "ok",
                 slow_seconds: float = 3.0, models: list[dict] | None = None, props: dict | None = None):
        self.script = list(script or [])
        self.models = models
        self.props = props
        self.gets: list[str] = []
        self.default = default
        self.slow_seconds = slow_seconds
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                with fake._lock:
                    fake.gets.append(self.path)
                if self.path.endswith("/models") and fake.models is not None:
                    self._send(200, json.dumps({"object": "list", "data": fake.models}).encode())
                elif self.path == "/props" and fake.props is not None:
                    self._send(200, json.dumps(fake.props).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    action = fake.script.pop(0) if fake.script else fake.default
                if callable(action):
                    status, payload = action(body)
                    self._send(status, payload.encode() if isinstance(payload, str) else json.dumps(payload).encode(),
                               "text/plain" if isinstance(payload, str) else "application/json")
                elif action == "ok":
                    self._send(200, json.dumps(completion()).encode())
                elif action in ("500", "429", "400"):
                    self._send(int(action), json.dumps({"error": {"message": f"fake {action}"}}).encode())
                elif action == "badjson":
                    self._send(200, b'{"id": "x", "choices": [ {"message": ')
                elif action == "slow":
                    time.sleep(fake.slow_seconds)
                    try:
                        self._send(200, json.dumps(completion()).encode())
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    raise ValueError(action)

            def _send(self, status: int, data: bytes, ctype: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
