"""A vLLM-like completions server on 127.0.0.1 backed by a real model.

It answers ``POST /v1/completions`` with ``echo`` and ``logprobs`` in vLLM's
legacy response layout, computing every prompt token's log-probability with a
medfair CausalLM. Remote audits run against it must reproduce the local
audit's numbers, which tests the whole remote path: prompt rendering, the
server's joint tokenisation, offset alignment and the summing of surface forms.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002  (keeps test output clean)
        pass

    def do_POST(self):  # noqa: N802  (http.server naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        if not self.path.endswith("/completions") or self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = []
        for index, prompt in enumerate(prompts):
            with self.server.lock:
                logprobs = self.server.echo_logprobs(prompt)
            choices.append(
                {"index": index, "text": prompt, "logprobs": logprobs, "finish_reason": "length", "stop_reason": None}
            )
        self.server.requests += 1
        self._send(200, {"id": "cmpl-test", "object": "text_completion", "model": body["model"], "choices": choices})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.model = model
        self.lock = threading.Lock()
        self.requests = 0

    def echo_logprobs(self, text: str) -> dict:
        tokenizer = self.model.tokenizer
        ids = self.model.encode_prompt(text)
        # Offsets in characters of the decoded prefix, as vLLM reports them.
        offsets = [len(tokenizer.decode(ids[:i])) for i in range(len(ids))]
        tokens = [tokenizer.decode(ids[: i + 1])[offsets[i]:] for i in range(len(ids))]
        logits = self.model.logits(torch.tensor([ids], dtype=torch.long))[0].double()
        log_probs = torch.log_softmax(logits, dim=-1)
        token_logprobs = [None] + [float(log_probs[i - 1, ids[i]]) for i in range(1, len(ids))]
        top = [None if lp is None else {tok: lp} for tok, lp in zip(tokens, token_logprobs)]
        return {"tokens": tokens, "token_logprobs": token_logprobs, "text_offset": offsets, "top_logprobs": top}


class ModelServer:
    """Context manager running the server on a free loopback port."""

    def __init__(self, model):
        self._server = _Server(model)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> int:
        return self._server.requests

    def __enter__(self) -> "ModelServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
