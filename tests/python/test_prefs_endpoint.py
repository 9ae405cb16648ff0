"""The endpoint teacher against the mock OpenAI server on 127.0.0.1: normal,
slow, failing and malformed responses, and the API key kept out of every file."""

from __future__ import annotations

import json
import os

import pytest

import medfair
from medfair.audit import PROJECT_DATA
from mock_openai_server import MockOpenAIServer

PAIN = PROJECT_DATA / "vignettes" / "pain_management.jsonl"
KEY_ENV = "MEDFAIR_TEST_TEACHER_KEY"
SECRET = "sk-test-teacher-4f1c9e7d2b"
CONVERSATION = [{"role": "system", "content": "You are a physician."}, {"role": "user", "content": "Treat pain?"}]


@pytest.fixture()
def server():
    with MockOpenAIServer(max_lifetime_s=120) as running:
        yield running


def teacher_for(url: str, **http) -> medfair.EndpointTeacher:
    options = dict(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05, api_key_env=KEY_ENV)
    options.update(http)
    endpoint = medfair.EndpointOptions(base_url=url, model="mock-teacher", http=medfair.HttpOptions(**options))
    return medfair.EndpointTeacher(endpoint, medfair.SamplingOptions(max_new_tokens=32))


def test_endpoint_teacher_answers(server):
    teacher = teacher_for(server.base_url())
    assert teacher.kind == "endpoint"
    assert teacher.model_id == f"mock-teacher@{server.base_url()}"
    answers = teacher.answer(["v1", "v2"], [CONVERSATION, CONVERSATION], seed=42)
    assert answers == ["reply 0 (seed 42) to: Treat pain?"] * 2
    body = server.requests[0].body
    assert body["model"] == "mock-teacher"
    assert body["max_tokens"] == 32
    assert body["temperature"] == 0.0
    assert body["seed"] == 42


def test_endpoint_teacher_retries_failures(server):
    answers = teacher_for(server.base_url("500-2")).answer(["v1"], [CONVERSATION])
    assert answers == ["reply 0 (seed 0) to: Treat pain?"]
    assert len(server.requests) == 3


def test_endpoint_teacher_gives_up(server):
    with pytest.raises(medfair.EndpointError, match="failed after 2 attempt.*HTTP 503"):
        teacher_for(server.base_url("503-9"), max_attempts=2).answer(["v1"], [CONVERSATION])


def test_endpoint_teacher_slow_times_out(server):
    with pytest.raises(medfair.EndpointError, match="(?i)timed? ?out"):
        teacher_for(server.base_url("slow-3"), read_timeout_s=0.5, max_attempts=1).answer(["v1"], [CONVERSATION])


def test_endpoint_teacher_slow_within_timeout(server):
    answers = teacher_for(server.base_url("slow-0.3"), read_timeout_s=5).answer(["v1"], [CONVERSATION])
    assert answers[0].startswith("reply 0")


def test_endpoint_teacher_malformed_json(server):
    with pytest.raises(medfair.EndpointError, match="(?i)json"):
        teacher_for(server.base_url("malformed")).answer(["v1"], [CONVERSATION])


def test_endpoint_teacher_rejects_top_k():
    endpoint = medfair.EndpointOptions(base_url="http://127.0.0.1:9/v1", model="m")
    with pytest.raises(medfair.ConfigError, match="no top_k field"):
        medfair.EndpointTeacher(endpoint, medfair.SamplingOptions(top_k=5))


def test_endpoint_build_keeps_key_secret(server, smollm2, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    ids = [v.id for v in medfair.load_generic(str(PAIN)).vignettes][:2]
    out = tmp_path / "prefs.jsonl"
    result = medfair.build_preferences(
        target=smollm2, teacher=server.base_url(), teacher_model="mock-teacher", api_key_env=KEY_ENV,
        task="generic", data=PAIN, out=out, vignettes=ids, max_new_tokens=8, drop_identical=False, progress=False,
    )
    assert result.written == 2
    for record in result.records:
        assert record["teacher"] == "endpoint"
        assert record["teacher_sha256"] is None
        assert record["reference"].startswith("reply 0 (seed ")
    # The key went to the server, and nowhere else.
    assert all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in server.requests)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in json.dumps(result.records)

    # Neutral references are cached: a rerun on a new output sends nothing.
    sent = len(server.requests)
    medfair.build_preferences(
        target=smollm2, teacher=server.base_url(), teacher_model="mock-teacher", api_key_env=KEY_ENV,
        task="generic", data=PAIN, out=tmp_path / "second.jsonl", vignettes=ids, max_new_tokens=8,
        drop_identical=False, progress=False, cache=result.cache_path,
    )
    assert len(server.requests) == sent
