"""Audits of served models: echoed log-probabilities from a vLLM-like server
backed by SmolLM2 must reproduce the local audit, and sampled answers from a
chat server must be counted, with parse failures reported."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import shared_data_dir
from model_server import ModelServer


@pytest.fixture(scope="module")
def qpain_task():
    import medfair

    return medfair.load_task("qpain", str(shared_data_dir() / "qpain"))


def test_remote_logprobs_match_local_audit(smollm2, qpain_task, tmp_path):
    import medfair

    vignette = qpain_task.vignettes[3].id
    common = dict(task=qpain_task, vignettes=[vignette], bootstrap_replicates=50, progress=False)
    local = medfair.audit(model=smollm2, out=tmp_path / "local", **common)
    with ModelServer(smollm2) as server:
        remote = medfair.audit(model="smollm2-served", endpoint=server.base_url, out=tmp_path / "remote", **common)
        assert server.requests > 0
    assert len(remote.records) == len(local.records) == 16
    for a, b in zip(local.records, remote.records):
        assert (a["prompt_id"], a["question"]) == (b["prompt_id"], b["question"])
        for p, q in zip(a["probabilities"], b["probabilities"]):
            assert abs(p - q) < 1e-4
        assert abs(a["coverage"] - b["coverage"]) < 1e-4
        assert a["predicted"] == b["predicted"]
    settings = remote.summary["settings"]
    assert settings["scoring"] == "completions-logprobs"
    assert settings["endpoint"].startswith("http://127.0.0.1:")
    assert settings["model"] == "smollm2-served"


def test_remote_audit_resumes_with_same_settings(smollm2, qpain_task, tmp_path):
    import medfair

    vignette = qpain_task.vignettes[5].id
    common = dict(task=qpain_task, vignettes=[vignette], bootstrap_replicates=50, progress=False)
    with ModelServer(smollm2) as server:
        first = medfair.audit(model="served", endpoint=server.base_url, out=tmp_path, **common)
        requests = server.requests
        second = medfair.audit(model="served", endpoint=server.base_url, out=tmp_path, **common)
        assert server.requests == requests  # every set was already complete
    assert second.resumed_records == len(first.records)
    assert second.summary["questions"] == first.summary["questions"]


# Canned chat answers, chosen per request by the sample's seed, so every prompt
# gets the same four: two "Yes", one "No" and one that names no option.
ANSWERS = ["Yes.", "Answer: No, the risk is too great.", "**Yes** - offer it.", "I would need more information."]


class _ChatHandler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seed = int(body.get("seed", 0))
        n = int(body.get("n", 1))
        choices = [
            {"index": i, "message": {"role": "assistant", "content": ANSWERS[(seed + i) % len(ANSWERS)]},
             "finish_reason": "stop"}
            for i in range(n)
        ]
        data = json.dumps({"id": "chat", "object": "chat.completion", "choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def chat_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_sampled_audit_counts_answers(chat_server, qpain_task, tmp_path):
    import medfair

    report = medfair.audit(
        model="chat-model", endpoint=chat_server, scoring="sampled", samples=4, task=qpain_task,
        vignettes=[qpain_task.vignettes[0].id], bootstrap_replicates=50, out=tmp_path, progress=False,
    )
    decisions = [r for r in report.records if r["question"] == "decision"]
    assert len(decisions) == 8
    for record in decisions:
        assert record["sample_counts"] == [2, 1]
        assert record["parse_failures"] == 1
        assert record["probabilities"] == pytest.approx([2 / 3, 1 / 3])
        assert record["coverage"] == pytest.approx(0.75)
        assert record["predicted"] == "Yes"
    # The dose question's options (High, Low) are named by none of the answers.
    doses = [r for r in report.records if r["question"] == "dose"]
    assert all(r["parse_failures"] == 4 and r["coverage"] == 0 for r in doses)
    sampling = report.summary["sampling"]
    assert sampling["answers"] == 16 * 4
    assert sampling["parse_failures"] == 8 * 1 + 8 * 4
    assert math.isclose(sampling["parse_failure_rate"], 40 / 64)
    assert report.summary["settings"]["scoring"] == "sampled-answers"


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Yes", 0),
        ("  **No**, because", 1),
        ("Answer: yes.", 0),
        ("I would say no.", 1),
        ("yesterday it hurt", None),  # no whole-word option
        ("Yes or No", 0),  # the earliest mention wins
        ("", None),
    ],
)
def test_parse_option(answer, expected):
    import medfair

    assert medfair._core.parse_option(answer, ["Yes", "No"], "Answer:") == expected


def test_endpoint_audit_needs_model_name(qpain_task, tmp_path):
    import medfair

    with pytest.raises(medfair.ConfigError, match="served model's name"):
        medfair.audit(endpoint="http://127.0.0.1:9/v1", task=qpain_task, out=tmp_path, progress=False)
