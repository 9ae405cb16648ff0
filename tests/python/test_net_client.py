"""HttpClient and OpenAIChatClient against the mock server: retries, backoff,
Retry-After, timeouts, resets, invalid responses, API key handling and the
concurrency limit."""

import json
import logging
import socket
import threading
import time

import pytest
from mock_openai_server import MockOpenAIServer

import medfair

FAKE_KEY = "sk-medfair-FAKE-KEY-7f3a9c1e"
MESSAGES = [{"role": "system", "content": "You are a clinician."}, {"role": "user", "content": "Diagnosis?"}]


@pytest.fixture
def server():
    with MockOpenAIServer(max_lifetime_s=120) as mock:
        yield mock


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    return FAKE_KEY


@pytest.fixture
def log_text(caplog):
    caplog.set_level(logging.DEBUG, logger="medfair")
    return lambda: "\n".join(r.getMessage() for r in caplog.records if r.name == "medfair")


def http_options(**overrides):
    fields = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 4, "read_timeout_s": 10.0}
    fields.update(overrides)
    return medfair.HttpOptions(**fields)


def chat_client(server, fault=None, **overrides):
    options = medfair.EndpointOptions(base_url=server.base_url(fault), model="mock-model", http=http_options(**overrides))
    return medfair.OpenAIChatClient(options)


def gaps(server):
    times = [r.received_at for r in server.requests]
    return [b - a for a, b in zip(times, times[1:])]


def test_chat_sends_request_and_key(server, api_key):
    params = medfair.GenerationParams(temperature=0.5, top_p=0.9, max_tokens=64, seed=7, stop=["\n"], n=2)
    choices = chat_client(server).complete(MESSAGES, params)
    assert [c.text for c in choices] == ["reply 0 (seed 7) to: Diagnosis?", "reply 1 (seed 7) to: Diagnosis?"]
    assert [c.finish_reason for c in choices] == ["stop", "stop"]
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {api_key}"
    assert request.body == {
        "model": "mock-model",
        "messages": MESSAGES,
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 7,
        "stop": ["\n"],
        "n": 2,
    }


def test_key_env_option(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("MEDFAIR_TEST_TEACHER_KEY", FAKE_KEY)
    chat_client(server).complete(MESSAGES)
    chat_client(server, api_key_env="MEDFAIR_TEST_TEACHER_KEY").complete(MESSAGES)
    assert "authorization" not in server.requests[0].headers
    assert server.requests[1].headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_500_then_success(server, log_text):
    choices = chat_client(server, "500-2", max_attempts=5).complete(MESSAGES)
    assert choices[0].text.startswith("reply 0")
    assert len(server.requests) == 3
    logs = log_text()
    assert "attempt 1/5 failed: HTTP 500: engine overloaded" in logs
    assert "attempt 2/5 failed: HTTP 500" in logs
    assert "attempt 3/5" not in logs
    assert server.base_url("500-2") + "/chat/completions" in logs


def test_503_exhausts_attempts(server, log_text):
    with pytest.raises(medfair.EndpointError) as caught:
        chat_client(server, "503-99", max_attempts=3).complete(MESSAGES)
    message = str(caught.value)
    assert "failed after 3 attempt(s)" in message
    assert "HTTP 503: engine overloaded" in message
    assert "/fault/503-99/v1/chat/completions" in message
    assert len(server.requests) == 3
    assert "attempt 3/3" not in log_text()
    assert "failed after 3 attempt(s)" in log_text()


def test_429_retry_after_seconds(server, log_text):
    chat_client(server, "429-1-1").complete(MESSAGES)
    assert len(server.requests) == 2
    assert 0.9 <= gaps(server)[0] < 2.0
    assert "HTTP 429: rate limit reached; retrying in 1.000 s (Retry-After)" in log_text()


def test_429_retry_after_date(server):
    chat_client(server, "429-1-date2").complete(MESSAGES)
    assert len(server.requests) == 2
    # An HTTP-date has whole seconds, so "now + 2 s" waits between 1 and 2 s.
    assert 0.9 <= gaps(server)[0] < 3.0


def test_429_retry_after_capped(server):
    chat_client(server, "429-1-30", retry_after_max_s=0.2).complete(MESSAGES)
    assert len(server.requests) == 2
    assert gaps(server)[0] < 1.5


def test_429_without_retry_after_uses_backoff(server, log_text):
    chat_client(server, "429-2-none").complete(MESSAGES)
    assert len(server.requests) == 3
    assert all(gap < 1.0 for gap in gaps(server))
    assert "(backoff)" in log_text()


def test_backoff_delays_within_cap(server):
    # Full jitter: delay i is uniform in [0, min(backoff_max_s, backoff_initial_s * 2**i)].
    options = {"backoff_initial_s": 0.2, "backoff_max_s": 0.3, "max_attempts": 4, "jitter_seed": 3}
    with pytest.raises(medfair.EndpointError):
        chat_client(server, "500-99", **options).complete(MESSAGES)
    first = gaps(server)
    assert len(first) == 3
    assert first[0] < 0.2 + 0.15
    assert all(gap < 0.3 + 0.15 for gap in first)


def test_connection_reset_then_success(server, log_text):
    chat_client(server, "reset-2").complete(MESSAGES)
    assert len(server.requests) == 3
    assert "attempt 1/4 failed: connection error" in log_text()


def test_connection_refused(log_text):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = medfair.EndpointOptions(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", http=http_options(max_attempts=2)
    )
    with pytest.raises(medfair.EndpointError) as caught:
        medfair.OpenAIChatClient(options).complete(MESSAGES)
    assert "failed after 2 attempt(s)" in str(caught.value)
    assert "connection error" in str(caught.value)
    assert "attempt 1/2 failed: connection error" in log_text()


def test_read_timeout(server, log_text):
    start = time.monotonic()
    with pytest.raises(medfair.EndpointError) as caught:
        chat_client(server, "slow-3", read_timeout_s=0.3, max_attempts=2).complete(MESSAGES)
    elapsed = time.monotonic() - start
    assert "timed out" in str(caught.value)
    assert "failed after 2 attempt(s)" in str(caught.value)
    assert len(server.requests) == 2
    assert 0.5 < elapsed < 2.5
    assert "attempt 1/2 failed: timed out" in log_text()


def test_400_is_not_retried(server, log_text):
    with pytest.raises(medfair.EndpointError) as caught:
        chat_client(server, "400").complete(MESSAGES)
    message = str(caught.value)
    assert "failed on attempt 1/4 with HTTP 400: This model's maximum context length is 2048 tokens." in message
    assert message in log_text()
    assert server.base_url("400") + "/chat/completions" in message
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("truncated", "is not valid JSON, it ends early (truncated)"),
        ("malformed", "is not valid JSON ("),
        ("nochoices", 'missing field "choices"'),
        ("badtypes", '"choices[0].message.content" is number, expected a string or null'),
    ],
)
def test_invalid_chat_responses(server, fault, expected):
    with pytest.raises(medfair.EndpointError) as caught:
        chat_client(server, fault).complete(MESSAGES)
    assert expected in str(caught.value)
    assert "the body starts" in str(caught.value)
    assert len(server.requests) == 1


def test_key_never_leaks(server, api_key, log_text):
    secret_query = "token=QUERY-SECRET-5b2d"
    clients = [chat_client(server, fault) for fault in ("401echo", "500-99", "400", "truncated")]
    errors = []
    for client in clients:
        with pytest.raises(medfair.EndpointError) as caught:
            client.complete(MESSAGES)
        errors.append(str(caught.value))
    http = medfair.HttpClient(http_options(max_attempts=2))
    with pytest.raises(medfair.EndpointError) as caught:
        http.post_json(server.base_url("500-99") + "/chat/completions?" + secret_query, json.dumps({"model": "m"}))
    errors.append(str(caught.value))

    assert "Incorrect API key provided in 'Bearer [redacted]'" in errors[0]
    assert "HTTP 401" in errors[0]
    assert "environment variable OPENAI_API_KEY" in errors[0]
    assert all(r.headers["authorization"] == f"Bearer {api_key}" for r in server.requests)
    texts = errors + [log_text()]
    for text in texts:
        assert api_key not in text
        assert "QUERY-SECRET" not in text
    assert "/fault/500-99/v1/chat/completions" in errors[-1]

    options = clients[0].options
    fields = [options.base_url, options.model] + [getattr(options.http, name) for name in dir(options.http)]
    assert not any(isinstance(value, str) and api_key in value for value in fields)
    assert http.has_api_key


def test_concurrency_limit_python_threads(server):
    client = medfair.HttpClient(http_options(max_concurrent_requests=3))
    url = server.base_url("slow-0.3") + "/chat/completions"
    body = json.dumps({"model": "m", "messages": MESSAGES})
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(client.post_json(url, body)[0])) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * 10
    assert len(server.requests) == 10
    assert server.max_in_flight == 3


def test_concurrency_limit_sample_answers(server):
    client = chat_client(server, "slow-0.2", max_concurrent_requests=2)
    conversations = [[{"role": "user", "content": f"case {i}"}] for i in range(6)]
    answers = medfair.sample_answers(client, conversations, 2)
    assert [len(a) for a in answers] == [2] * 6
    assert answers[4] == ["reply 0 (seed None) to: case 4", "reply 1 (seed None) to: case 4"]
    assert len(server.requests) == 6
    assert server.max_in_flight == 2


def test_sample_answers_tops_up_when_n_is_ignored(server, log_text):
    client = chat_client(server, "fewer")
    answers = medfair.sample_answers(client, [MESSAGES], 3, medfair.GenerationParams(seed=5, temperature=1.0))
    assert answers == [[f"reply 0 (seed {seed}) to: Diagnosis?" for seed in (5, 6, 7)]]
    assert [r.body["n"] for r in server.requests] == [3, 2, 1]
    assert "returned 1 choices for n = 3" in log_text()


def test_messages_from_objects(server):
    class Message:
        def __init__(self, role, content):
            self.role, self.content = role, content

    chat_client(server).complete([Message("user", "from an object")])
    assert server.requests[0].body["messages"] == [{"role": "user", "content": "from an object"}]


def test_options_reject_unknown_keyword():
    with pytest.raises(TypeError, match="unexpected keyword argument 'read_timeout'"):
        medfair.HttpOptions(read_timeout=3)


def test_connection_reused_within_thread(server):
    client = chat_client(server)
    for _ in range(3):
        client.complete(MESSAGES)
    ports = [r.client_port for r in server.requests]
    assert len(ports) == 3
    assert len(set(ports)) == 1
