from __future__ import annotations

from collections.abc import Iterator

import pytest

from agents.prompt_budget import chars_per_token, counter, estimate_tokens
from agents.prompts import CardContext, PromptContext, compile_prompt
from agents.providers.tokenize import count_tokens, tokenize_url
from tests.agents.fake_llm import FakeLLMServer, Reply, closed_port_url, json_error
from tests.agents.fake_tokenizer import fake_tokens, llamacpp_tokenizer, vllm_tokenizer

TEXT = "def parse(row):\n    return row.split(',')  # the fields of one CSV row\n"
MODEL = "Qwen/Qwen2.5-Coder-0.5B-Instruct"


@pytest.fixture
def llamacpp() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=llamacpp_tokenizer()) as server:
        yield server
        assert server.errors == []


def test_llamacpp_counts_with_its_own_tokenizer_and_the_v1_suffix_is_dropped(llamacpp: FakeLLMServer) -> None:
    counted = count_tokens("openai", llamacpp.base_url + "/v1/", TEXT)

    assert counted == len(fake_tokens(TEXT)) > 0
    [request] = llamacpp.requests
    assert (request.method, request.path) == ("POST", "/tokenize")
    assert request.json()["content"] == TEXT
    assert "authorization" not in request.headers


def test_vllm_counts_with_the_model_named() -> None:
    with FakeLLMServer(responder=vllm_tokenizer(MODEL)) as server:
        counted = count_tokens("openai", server.base_url + "/v1", TEXT, model=MODEL, api_key="sk-local")

        assert counted == len(fake_tokens(TEXT))
        [request] = server.requests
        assert request.json()["prompt"] == TEXT and request.json()["model"] == MODEL
        assert request.headers["authorization"] == "Bearer sk-local"


@pytest.mark.parametrize(
    "reply",
    [
        json_error(404, "Not Found"),
        json_error(405, "Method Not Allowed"),
        json_error(500, "boom"),
        Reply(chunks=[b"<html>not json</html>"], chunked=False, content_type="text/html"),
        Reply(chunks=[b'{"tokens": "many"}'], chunked=False),
        Reply(chunks=[b"[1, 2, 3]"], chunked=False),
        Reply(chunks=[b'{"tokens": [1, 2]}'], pauses={0: 2.0}),
    ],
    ids=["404", "405", "500", "html", "wrong-shape", "a-list", "too-slow"],
)
def test_a_server_that_cannot_count_gives_none(fake_llm: FakeLLMServer, reply: Reply) -> None:
    fake_llm.queue(reply)

    assert count_tokens("openai", fake_llm.base_url, TEXT, timeout=0.5) is None
    assert len(fake_llm.requests) == 1


def test_an_unreachable_server_gives_none() -> None:
    assert count_tokens("openai", closed_port_url(), TEXT, timeout=1.0) is None


def test_ollama_and_scripted_have_no_tokenizer_and_are_not_asked(llamacpp: FakeLLMServer) -> None:
    assert count_tokens("ollama", llamacpp.base_url, TEXT) is None
    assert count_tokens("scripted", llamacpp.base_url, TEXT) is None
    assert count_tokens("openai", "", TEXT) is None
    assert llamacpp.requests == []
    with pytest.raises(ValueError, match="unknown provider kind"):
        count_tokens("anthropic", llamacpp.base_url, TEXT)


def test_tokenize_url() -> None:
    assert tokenize_url("http://h:8080") == "http://h:8080/tokenize"
    assert tokenize_url("http://h:8080/v1/") == "http://h:8080/tokenize"
    assert tokenize_url("http://h/llm/v1") == "http://h/llm/tokenize"


def test_one_count_of_the_fixed_prompt_calibrates_the_estimate(llamacpp: FakeLLMServer) -> None:
    card = CardContext(id=3, title="Parse dates", description="Dates arrive as text in three formats. " * 20)
    compiled = compile_prompt(PromptContext(role_name="coder", allowed_tools=["read_file", "write_file"], card=card))
    sample = "\n".join(message["content"] for message in compiled.messages)

    counted = count_tokens("openai", llamacpp.base_url, sample)
    assert counted is not None
    ratio = chars_per_token(sample, counted)

    assert estimate_tokens(sample, ratio) >= counted  # the calibrated estimate still overestimates
    assert estimate_tokens(sample, ratio) <= estimate_tokens(sample)  # and wastes less room than the default
    assert counter(ratio)(sample) == estimate_tokens(sample, ratio)
