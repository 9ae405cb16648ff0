"""A mock OpenAI-compatible server for the net tests, on 127.0.0.1 only.

It answers ``/v1/chat/completions`` and ``/v1/completions`` in vLLM's response
formats (vllm/entrypoints/openai/serving_completion.py and serving_chat.py),
with a deterministic fake tokeniser so that tests know the expected
log-probabilities. A path prefix ``/fault/<spec>/`` makes it misbehave; see
``MockOpenAIServer.base_url``. It records every request, tracks the max
number of requests in flight, and shuts itself down after ``max_lifetime_s``.

Fault specs (counts apply per spec string, over the server's lifetime):
  slow-<s>             sleep s seconds (at most 10) before a normal response
  429-<k>-<after>      first k requests get 429 with "Retry-After: <after>";
                       after = "date<s>" sends an HTTP-date s seconds ahead,
                       "none" sends no header
  500-<k>, 503-<k>     first k requests get that status with an error body
  reset-<k>            first k requests: the socket is reset without a reply
  truncated            the normal body cut in half
  malformed            a body that is not JSON
  nochoices            a JSON object without "choices"
  badtypes             "choices" whose text/content is a number
  nologprobs           completions choices with "logprobs": null
  noecho               completions text without the echoed prompt
  fewer                chat: always one choice, whatever n is
  nobos                completions: no "<s>" token before the prompt
  400                  400 with a vLLM error body
  401echo              401 whose message quotes the Authorization header
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SLEEP_S = 10.0
BOS_TOKEN = "<s>"
GENERATED_TOKEN = " yes"
GENERATED_LOGPROB = -0.5


def tokenize(text: str) -> list[str]:
    """Split text into fake tokens: each word with the whitespace before it,
    and trailing whitespace as a token of its own."""
    return re.findall(r"\s*\S+|\s+$", text)


def token_logprob(token: str) -> float:
    """Return the fixed fake log-probability of a token (an exact binary fraction)."""
    return -(1 + len(token)) / 8


def expected_score(prompt: str, continuation: str) -> float:
    """Return the sum of the fake log-probabilities of the tokens that start at
    or after the continuation, counting a token that straddles the boundary."""
    text = prompt + continuation
    total = 0.0
    offset = 0
    for token in tokenize(text):
        if offset + len(token) > len(prompt):
            total += token_logprob(token)
        offset += len(token)
    return total


@dataclass
class RecordedRequest:
    path: str
    client_port: int
    fault: str | None
    headers: dict[str, str]
    body: object
    received_at: float
    finished_at: float | None = None


@dataclass
class _Fault:
    name: str
    args: list[str] = field(default_factory=list)


def _parse_fault(spec: str | None) -> _Fault | None:
    if not spec:
        return None
    parts = spec.split("-")
    return _Fault(parts[0], parts[1:])


def _completion_logprobs(text: str, with_bos: bool, generated: bool) -> dict:
    tokens = ([BOS_TOKEN] if with_bos else []) + tokenize(text)
    logprobs: list[float | None] = [None] + [token_logprob(t) for t in tokens[1:]]
    if generated:
        tokens.append(GENERATED_TOKEN)
        logprobs.append(GENERATED_LOGPROB)
    offsets = []
    position = 0
    for token in tokens:
        offsets.append(position)
        position += len(token)
    top = [None if lp is None else {tok: lp} for tok, lp in zip(tokens, logprobs)]
    return {"text_offset": offsets, "token_logprobs": logprobs, "tokens": tokens, "top_logprobs": top}


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"  # keep-alive, as vLLM's server

    def log_message(self, format, *args):  # noqa: A002  (keeps test output clean)
        pass

    def do_POST(self):  # noqa: N802  (http.server naming)
        owner = self.server.owner
        match = re.fullmatch(r"(?:/fault/([^/]+))?(/v1/(?:chat/)?completions)", self.path.split("?")[0])
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(min(length, 16 << 20))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = RecordedRequest(
            path=self.path,
            client_port=self.client_address[1],
            fault=match.group(1) if match else None,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            received_at=time.monotonic(),
        )
        owner._enter(record)
        try:
            if match is None:
                self._send_json(404, {"object": "error", "message": f"no route for {self.path}", "code": 404})
                return
            fault = _parse_fault(record.fault)
            count = owner._count(record.fault)
            self._answer(match.group(2), body, fault, count)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a read timeout), which the tests expect
        finally:
            record.finished_at = time.monotonic()
            owner._leave()

    def _answer(self, endpoint: str, body, fault: _Fault | None, count: int):
        name = fault.name if fault else None
        args = fault.args if fault else []
        if name == "slow":
            time.sleep(min(float(args[0]), MAX_SLEEP_S))
        elif name == "429" and count <= int(args[0]):
            headers = {}
            after = args[1] if len(args) > 1 else "none"
            if after.startswith("date"):
                when = time.time() + float(after[4:])
                headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
            elif after != "none":
                headers["Retry-After"] = after
            error = {"message": "rate limit reached", "type": "rate_limit_error", "code": 429}
            self._send_json(429, {"error": error}, headers)
            return
        elif name in ("500", "503") and count <= int(args[0]):
            message = {"object": "error", "message": "engine overloaded", "type": "InternalServerError"}
            self._send_json(int(name), message | {"code": int(name)})
            return
        elif name == "reset" and count <= int(args[0]):
            # SO_LINGER with a zero timeout makes close() send a TCP RST.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        elif name == "400":
            message = "This model's maximum context length is 2048 tokens."
            error = {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}
            self._send_json(400, error)
            return
        elif name == "401echo":
            authorization = self.headers.get("Authorization", "")
            error = {"message": f"Incorrect API key provided in '{authorization}'", "type": "invalid_request_error"}
            self._send_json(401, {"error": error})
            return
        elif name == "malformed":
            self._send_raw(200, b"{'choices': [text: 'not json']}")
            return
        elif name == "nochoices":
            self._send_json(200, {"id": "cmpl-mock", "object": "text_completion", "model": "mock"})
            return

        if not isinstance(body, dict):
            self._send_json(400, {"object": "error", "message": "request body is not a JSON object", "code": 400})
            return
        if endpoint == "/v1/chat/completions":
            payload = self._chat(body, name)
        else:
            payload = self._completions(body, name)
        data = json.dumps(payload).encode()
        if name == "truncated":
            data = data[: len(data) // 2]
        self._send_raw(200, data)

    def _chat(self, body: dict, fault: str | None) -> dict:
        n = 1 if fault == "fewer" else int(body.get("n", 1))
        seed = body.get("seed")
        messages = body.get("messages", [])
        last = messages[-1]["content"] if messages else ""
        choices = []
        for index in range(n):
            content: object = f"reply {index} (seed {seed}) to: {last[:40]}"
            if fault == "badtypes":
                content = 42
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": content, "tool_calls": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                    "stop_reason": None,
                }
            )
        return {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": choices,
            "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1},
        }

    def _completions(self, body: dict, fault: str | None) -> dict:
        prompts = body.get("prompt", "")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        n = int(body.get("n", 1))
        echo = bool(body.get("echo", False))
        max_tokens = int(body.get("max_tokens", 16))
        seed = body.get("seed")
        choices = []
        for prompt_index, prompt in enumerate(prompts):
            for sample in range(n):
                if echo:
                    generated = max_tokens > 0
                    text = prompt + (GENERATED_TOKEN if generated else "")
                    logprobs = None
                    if body.get("logprobs") is not None and fault != "nologprobs":
                        logprobs = _completion_logprobs(prompt, with_bos=fault != "nobos", generated=generated)
                    if fault == "noecho":
                        text = GENERATED_TOKEN
                else:
                    text = f" completion {sample} (seed {seed}) of prompt {prompt_index}"
                    logprobs = None
                if fault == "badtypes":
                    text = 42
                choices.append(
                    {
                        "index": len(choices),
                        "text": text,
                        "logprobs": logprobs,
                        "finish_reason": "length",
                        "stop_reason": None,
                        "prompt_logprobs": None,
                    }
                )
        return {
            "id": "cmpl-mock",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": choices,
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def _send_json(self, status: int, payload: dict, headers: dict | None = None):
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_raw(self, status: int, data: bytes, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "MockOpenAIServer"

    def handle_error(self, request, client_address):
        pass  # resets and client timeouts are part of the tests


class MockOpenAIServer:
    """Serve the mock API on 127.0.0.1 at an ephemeral port, in a daemon thread."""

    def __init__(self, max_lifetime_s: float = 300.0):
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._counts: dict[str | None, int] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._watchdog = threading.Timer(max_lifetime_s, self.stop)
        self._watchdog.daemon = True
        self._stopped = False

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def base_url(self, fault: str | None = None) -> str:
        """Return the API root to pass as base_url, with an optional fault spec."""
        prefix = f"/fault/{fault}" if fault else ""
        return f"http://127.0.0.1:{self.port}{prefix}/v1"

    def start(self) -> "MockOpenAIServer":
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self):
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._watchdog.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _enter(self, record: RecordedRequest):
        with self._lock:
            self.requests.append(record)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self):
        with self._lock:
            self._in_flight -= 1

    def _count(self, fault: str | None) -> int:
        with self._lock:
            self._counts[fault] = self._counts.get(fault, 0) + 1
            return self._counts[fault]
