"""OpenAICompletionsClient against the mock server: continuation scores from
echoed prompt log-probabilities, batching, boundary handling and generation."""

import pytest
from mock_openai_server import GENERATED_TOKEN, MockOpenAIServer, expected_score, token_logprob

import medfair

ITEMS = [
    ("Patient presents with", [" chest pain", " fever", " shortness of breath"]),
    ("The most likely diagnosis is", [" A", " B"]),
    ("Fièvre à", [" 39°C", " 40 °C et frissons"]),
    ("Answer:", [" yes", " no"]),
    ("Q: age?\nA:", [" 54"]),
]


@pytest.fixture
def server():
    with MockOpenAIServer(max_lifetime_s=120) as mock:
        yield mock


def scorer(server, fault=None, http=None, **scoring):
    http_fields = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}
    http_fields.update(http or {})
    options = medfair.EndpointOptions(
        base_url=server.base_url(fault), model="mock-model", http=medfair.HttpOptions(**http_fields)
    )
    return medfair.OpenAICompletionsClient(options, medfair.ScoringOptions(**scoring))


def test_score_matches_fake_tokeniser(server):
    prompt, continuations = ITEMS[0]
    scores = scorer(server).score(prompt, continuations)
    assert [s.logprob for s in scores] == [expected_score(prompt, c) for c in continuations]
    assert scores[0].tokens == [" chest", " pain"]
    assert scores[0].token_logprobs == [token_logprob(" chest"), token_logprob(" pain")]
    assert not any(s.straddles_boundary for s in scores)

    body = server.requests[0].body
    assert body["prompt"] == [prompt + c for c in continuations]
    assert body["echo"] is True
    assert body["logprobs"] == 1
    assert body["max_tokens"] == 0
    assert body["model"] == "mock-model"


def test_score_many_batches_requests(server):
    items = [(prompt, continuations) for prompt, continuations in ITEMS]
    scores = scorer(server, max_prompts_per_request=4).score_many(items)
    for (prompt, continuations), item_scores in zip(items, scores):
        assert [s.logprob for s in item_scores] == [expected_score(prompt, c) for c in continuations]
    texts = [prompt + c for prompt, continuations in items for c in continuations]
    sent = [r.body["prompt"] for r in server.requests]
    assert sorted(len(p) for p in sent) == [2, 4, 4]
    assert sorted(t for p in sent for t in p) == sorted(texts)


def test_score_single_string_prompts(server):
    prompt, continuations = ITEMS[1]
    scores = scorer(server, max_prompts_per_request=1).score(prompt, continuations)
    assert [s.logprob for s in scores] == [expected_score(prompt, c) for c in continuations]
    assert sorted(r.body["prompt"] for r in server.requests) == [prompt + " A", prompt + " B"]


def test_score_counts_code_points(server):
    prompt, continuations = ITEMS[2]
    scores = scorer(server).score(prompt, continuations)
    assert scores[0].tokens == [" 39°C"]
    assert [s.logprob for s in scores] == [expected_score(prompt, c) for c in continuations]


def test_score_without_bos(server):
    prompt, continuations = ITEMS[3]
    scores = scorer(server, "nobos").score(prompt, continuations)
    assert [s.logprob for s in scores] == [expected_score(prompt, c) for c in continuations]


def test_score_with_one_generated_token(server):
    prompt, continuations = ITEMS[0]
    scores = scorer(server, max_tokens=1).score(prompt, continuations)
    assert [s.logprob for s in scores] == [expected_score(prompt, c) for c in continuations]
    assert all(GENERATED_TOKEN not in s.tokens for s in scores)
    assert server.requests[0].body["max_tokens"] == 1


def test_score_straddling_token_policies(server, caplog):
    # The prompt ends with a space, so the fake token " A" starts in the prompt.
    prompt, continuations = "The most likely diagnosis is ", ["A", "B"]
    included = scorer(server).score(prompt, continuations)
    assert all(s.straddles_boundary for s in included)
    assert included[0].tokens == [" A"]
    assert included[0].logprob == expected_score(prompt, "A")

    with pytest.raises(medfair.DataError, match='token " A" crosses the boundary'):
        scorer(server, straddle=medfair.StraddlePolicy.raise_error).score(prompt, continuations)

    # Excluding the only token leaves nothing to score.
    with pytest.raises(medfair.EndpointError, match="no echoed token lies in the continuation"):
        scorer(server, straddle=medfair.StraddlePolicy.exclude).score(prompt, continuations)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("nologprobs", 'choice 0 has no "logprobs"'),
        ("noecho", "the server ignored echo = true"),
        ("badtypes", '"choices[0].text" is number, expected a string'),
        ("truncated", "it ends early (truncated)"),
        ("nochoices", 'missing field "choices"'),
    ],
)
def test_score_invalid_responses(server, fault, expected):
    with pytest.raises(medfair.EndpointError) as caught:
        scorer(server, fault).score("Patient presents with", [" fever"])
    assert expected in str(caught.value)
    assert len(server.requests) == 1


def test_score_retries_server_errors(server):
    scores = scorer(server, "500-1").score("Answer:", [" yes"])
    assert scores[0].logprob == expected_score("Answer:", " yes")
    assert len(server.requests) == 2


def test_score_rejects_empty_continuation(server):
    with pytest.raises(medfair.DataError, match="continuation 1 of item 0 is empty"):
        scorer(server).score("Answer:", [" yes", ""])
    assert server.requests == []


def test_score_many_respects_concurrency_limit(server):
    client = scorer(server, "slow-0.2", http={"max_concurrent_requests": 2}, max_prompts_per_request=1)
    scores = client.score_many([("Answer:", [" yes", " no", " maybe"]), ("Q:", [" a", " b", " c"])])
    assert [len(s) for s in scores] == [3, 3]
    assert len(server.requests) == 6
    assert server.max_in_flight == 2


def test_complete_and_sample_answers(server):
    client = scorer(server)
    choices = client.complete("Patient presents with", medfair.GenerationParams(n=2, seed=9, max_tokens=8))
    assert [c.text for c in choices] == [" completion 0 (seed 9) of prompt 0", " completion 1 (seed 9) of prompt 0"]
    assert server.requests[0].body == {"model": "mock-model", "prompt": "Patient presents with", "seed": 9,
                                       "max_tokens": 8, "n": 2}

    answers = medfair.sample_answers(client, ["a", "b", "c"], 3, medfair.GenerationParams(seed=1))
    assert answers == [[f" completion {i} (seed 1) of prompt 0" for i in range(3)]] * 3
