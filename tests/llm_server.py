"""A local HTTP server speaking the OpenAI chat-completions and Anthropic messages wire formats.

Tests script its answers, one per request, in order: a reply text, an HTTP error, a delay longer
than the client's timeout, or a function of the request. Every request is kept (path, headers,
JSON body) so that tests can count them and look at what the SDKs really sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from local_server import LocalServer


@dataclass
class Answer:
    text: str | None = None
    status: int = 200
    delay: float = 0.0
    headers: dict = field(default_factory=dict)
    error: str = "scripted error"
    finish: str | None = None


def reply(text: str, **kw) -> Answer:
    return Answer(text=text, **kw)


def error(status: int, message: str = "scripted error", **kw) -> Answer:
    return Answer(status=status, error=message, **kw)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class FakeLLM(LocalServer):
    def __init__(self):
        self.answers: list[Answer | Callable[[dict], Answer]] = []
        self.requests: list[dict] = []
        self.default: Answer | Callable[[dict], Answer] | None = None  # when the script runs out
        # The models API (GET /v1/models[/id], what isobench asks at planning): None serves any model id
        self.models: list[str] | None = None
        self.key: str | None = None  # when set, a request without it gets 401, as a provider answers
        self.models_status: int | None = None  # when set, the models API answers only this error (503: busy)
        self.model_requests: list[dict] = []  # the GETs, kept apart from the chat requests
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refused(self) -> dict | None:
                """The error a provider answers to a missing or wrong key (None: the key is right)."""
                if fake.key is None:
                    return None
                given = self.headers.get("x-api-key") or (self.headers.get("authorization") or "")[7:]
                if given == fake.key:
                    return None
                return {"error": {"message": "Incorrect API key provided", "type": "authentication_error"}}

            def do_GET(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.model_requests.append({"path": self.path, "headers": headers})
                path = self.path.split("?")[0].rstrip("/")
                if self._refused():
                    return self._reply(401, self._refused())
                if fake.models_status:
                    return self._reply(
                        fake.models_status, {"error": {"message": "overloaded", "type": "api_error"}}
                    )
                anthropic = "anthropic-version" in headers
                served = fake.models if fake.models is not None else ["test-model"]

                def entry(model: str) -> dict:
                    if anthropic:
                        return {
                            "id": model,
                            "type": "model",
                            "display_name": model,
                            "created_at": "2025-01-01T00:00:00Z",
                        }
                    return {"id": model, "object": "model", "created": 0, "owned_by": "tests"}

                if path == "/v1/models":
                    data = [entry(m) for m in served]
                    if anthropic:
                        return self._reply(
                            200, {"data": data, "has_more": False, "first_id": None, "last_id": None}
                        )
                    return self._reply(200, {"object": "list", "data": data})
                if path.startswith("/v1/models/"):
                    model = path[len("/v1/models/") :]
                    if fake.models is None or model in fake.models:
                        return self._reply(200, entry(model))
                    return self._reply(
                        404, {"error": {"message": f"model {model} not found", "type": "not_found_error"}}
                    )
                return self._reply(404, {"error": {"message": f"no route {path}", "type": "not_found_error"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                request = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
                with fake._lock:
                    fake.requests.append(request)
                if not self.path.startswith("/v1/"):  # the APIs live under /v1, as on real servers
                    return self._reply(
                        404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                    )
                if self._refused():
                    return self._reply(401, self._refused())
                with fake._lock:
                    answer = fake.answers.pop(0) if fake.answers else fake.default
                if callable(answer):
                    answer = answer(request)
                if answer is None:
                    answer = error(500, "the test scripted no answer for this request")
                if answer.delay:
                    time.sleep(answer.delay)
                anthropic = self.path.rstrip("/").endswith("/messages")
                if answer.status != 200:
                    payload = (
                        {"type": "error", "error": {"type": "api_error", "message": answer.error}}
                        if anthropic
                        else {
                            "error": {"message": answer.error, "type": "invalid_request_error", "code": None}
                        }
                    )
                else:
                    payload = fake._body(anthropic, body, answer)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        self._listen(Handler)

    @staticmethod
    def _body(anthropic: bool, body: dict, answer: Answer) -> dict:
        prompt = json.dumps(body.get("messages", [])) + str(body.get("system", ""))
        if anthropic:
            return {
                "id": "msg_test",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": [{"type": "text", "text": answer.text}],
                "stop_reason": answer.finish or "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": _tokens(prompt), "output_tokens": _tokens(answer.text)},
            }
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": answer.finish or "stop",
                }
            ],
            "usage": {
                "prompt_tokens": _tokens(prompt),
                "completion_tokens": _tokens(answer.text),
                "total_tokens": _tokens(prompt) + _tokens(answer.text),
            },
        }

    def base_url(self, provider: str) -> str:
        """What to give the SDK: OpenAI clients want the /v1 prefix, Anthropic's adds it itself."""
        return self.url + "/v1" if provider == "openai" else self.url

    def script(self, *answers) -> FakeLLM:
        self.answers.extend(answers)
        return self
