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
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                request = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
                with fake._lock:
                    fake.requests.append(request)
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
