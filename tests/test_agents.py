"""Agents: the batched HF sampler with KV caches, text agents, and an OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from interplay import models
from interplay.agents import (
    AgentError,
    ChatEncoder,
    ChatTemplateError,
    ExpertAgent,
    HFAgent,
    HumanAgent,
    OpenAIAgent,
    RandomAgent,
)

HISTORIES = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
    [{"role": "user", "content": "a longer question, with more tokens?"}],
    [{"role": "user", "content": "x"}],
]


@pytest.fixture(scope="module")
def tiny():
    return models.load("tiny")


def full_forward_logprobs(model, ids: list[int]) -> torch.Tensor:
    """log p(ids[t] | ids[:t]) for t >= 1 from one uncached forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]


def test_kv_cached_logprobs_match_a_full_forward(tiny):
    model, tokenizer = tiny
    agent = HFAgent(model, tokenizer, seed=0, max_new_tokens=10, temperature=1.0)
    session = agent.start(3)
    new = {row: history for row, history in enumerate(HISTORIES)}
    sequences = {row: ([], [], []) for row in range(3)}  # ids, agent mask, logprobs
    for turn in range(4):
        for row, reply in session.act(new).items():
            ids, mask, logps = sequences[row]
            ids += reply.context_ids + reply.token_ids
            mask += [0] * len(reply.context_ids) + [1] * len(reply.token_ids)
            logps += [0.0] * len(reply.context_ids) + reply.logprobs
        if turn == 1:  # an episode ends: its row leaves the shared cache
            session.drop([1])
            sequences[1] = None
        new = {row: [{"role": "user", "content": f"turn {turn} row {row}"}] for row in session.live}
    for record in sequences.values():
        if record is None:
            continue
        ids, mask, logps = record
        expected = full_forward_logprobs(model, ids)
        agent_tokens = torch.tensor(mask[1:], dtype=torch.bool)
        assert agent_tokens.sum() >= 4 * 1
        torch.testing.assert_close(torch.tensor(logps[1:])[agent_tokens], expected[agent_tokens], atol=1e-4, rtol=0)
    assert session.live == [0, 2]


def test_chunked_cache_grows_drops_and_crops_exactly(tiny, monkeypatch):
    """A chunk of 3 positions: the KV buffers are regrown every few steps, after a drop (the longest
    prompt's row, so the columns only it used are cropped from the left) and after the crop; the
    recorded log-probs still equal a full forward's."""
    from interplay.agents.kv_cache import ChunkedLayer

    monkeypatch.setattr(ChunkedLayer, "chunk", 3)
    model, tokenizer = tiny
    agent = HFAgent(model, tokenizer, seed=1, max_new_tokens=9)
    histories = [HISTORIES[2], [{"role": "user", "content": "a much longer question " * 6}], HISTORIES[0]]
    session = agent.start(3)
    new = dict(enumerate(histories))
    sequences: dict[int, list[int]] = {row: [] for row in range(3)}
    logprobs: dict[int, list[float | None]] = {row: [] for row in range(3)}
    for turn in range(3):
        for row, reply in session.act(new).items():
            sequences[row] += reply.context_ids + reply.token_ids
            logprobs[row] += [None] * len(reply.context_ids) + reply.logprobs
        if turn == 0:
            width = session.mask.shape[1]
            session.drop([1])
            assert session.mask.shape[1] < width  # cropped from the left
        layers = session.cache.layers
        assert all(type(layer) is ChunkedLayer for layer in layers)
        assert layers[0].keys.shape[-2] == session.mask.shape[1]
        new = {row: [{"role": "user", "content": f"turn {turn}"}] for row in session.live}
    for row in session.live:
        expected = full_forward_logprobs(model, sequences[row])
        sampled = [t for t, p in enumerate(logprobs[row][1:]) if p is not None]
        torch.testing.assert_close(torch.tensor([logprobs[row][t + 1] for t in sampled]), expected[sampled],
                                   atol=1e-4, rtol=0)


def test_chunked_layer_equals_a_dynamic_layer(monkeypatch):
    """The same updates, left crop, row selection and right crop give ChunkedLayer the keys and values
    DynamicLayer gets by concatenation."""
    from transformers.cache_utils import DynamicLayer

    from interplay.agents.kv_cache import ChunkedLayer

    monkeypatch.setattr(ChunkedLayer, "chunk", 2)
    layers = [DynamicLayer(), ChunkedLayer()]
    generator = torch.Generator().manual_seed(0)

    def update(length: int) -> None:
        keys, values = torch.randn(2, 3, 2, length, 4, generator=generator)
        outputs = [layer.update(keys[: layer_batch], values[: layer_batch]) for layer in layers]
        torch.testing.assert_close(outputs[0], outputs[1], atol=0, rtol=0)

    layer_batch = 3
    for length in (5, 1, 1, 1, 2):
        update(length)
    for layer in layers:  # HFSession's left crop
        layer.keys, layer.values = layer.keys[:, :, 2:], layer.values[:, :, 2:]
    update(1)
    for layer in layers:
        layer.batch_select_indices(torch.tensor([0, 2]))
    layer_batch = 2
    update(1)
    for layer in layers:
        layer.crop(-2)
    update(3)


def test_draw_follows_the_probabilities(tiny):
    agent = HFAgent(*tiny, seed=0)
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.75]]).repeat(20000, 1)
    counts = torch.bincount(agent.draw(probs), minlength=4) / 20000
    assert counts[0] == counts[2] == 0
    assert abs(float(counts[1]) - 0.25) < 0.02


def test_greedy_batch_matches_model_generate(tiny):
    model, tokenizer = tiny
    agent = HFAgent(model, tokenizer, temperature=0, max_new_tokens=12)
    replies = agent.act(HISTORIES)
    encoder = ChatEncoder(tokenizer)
    for history, reply in zip(HISTORIES, replies):
        prompt = torch.tensor([encoder.prompt(history)])
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=12,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        generated = out[0, prompt.shape[1]:].tolist()
        assert reply.token_ids == generated
        assert reply.context_ids == prompt[0].tolist()
        assert reply.finish_reason == ("stop" if generated[-1] == tokenizer.eos_token_id else "length")
        assert isinstance(reply.text, str)


def test_top_k_one_is_greedy_and_stop_strings_end_replies(tiny):
    model, tokenizer = tiny
    greedy = HFAgent(model, tokenizer, temperature=0, max_new_tokens=8).act(HISTORIES)
    top1 = HFAgent(model, tokenizer, temperature=1.5, top_k=1, max_new_tokens=8, seed=3).act(HISTORIES)
    assert [r.token_ids for r in greedy] == [r.token_ids for r in top1]
    sampled = HFAgent(model, tokenizer, seed=0, max_new_tokens=16).act(HISTORIES)
    row, reply = next((i, r) for i, r in enumerate(sampled) if len(r.text) >= 4)
    stop = reply.text[2:4]
    stopped = HFAgent(model, tokenizer, seed=0, max_new_tokens=16, stop=[stop]).act(HISTORIES)[row]
    assert stopped.finish_reason == "stop" and stopped.text.endswith(stop) and stop not in stopped.text[:-1]
    assert stopped.token_ids == reply.token_ids[: len(stopped.token_ids)]


def test_sampling_is_seeded_and_top_p_keeps_the_head(tiny):
    model, tokenizer = tiny
    first = HFAgent(model, tokenizer, seed=7, top_p=0.5, max_new_tokens=12).act(HISTORIES)
    second = HFAgent(model, tokenizer, seed=7, top_p=0.5, max_new_tokens=12).act(HISTORIES)
    assert [r.token_ids for r in first] == [r.token_ids for r in second]
    with pytest.raises(ValueError, match="top_p"):
        HFAgent(model, tokenizer, top_p=0)


def test_session_rejects_wrong_rows(tiny):
    session = HFAgent(*tiny).start(2)
    with pytest.raises(AgentError, match="live rows"):
        session.act({0: HISTORIES[0]})


def test_chat_encoder_rejects_templates_that_drop_replies(tiny):
    _, tokenizer = tiny
    last_only = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    last_only.chat_template = "{{ messages[-1]['content'] }}{% if add_generation_prompt %}>{% endif %}"
    with pytest.raises(ChatTemplateError, match="does not render an assistant message"):
        ChatEncoder(last_only)


def test_text_agents():
    assert ExpertAgent().act(HISTORIES[:2], expert_actions=["up", None])[0].text == "up"
    failed = ExpertAgent().act(HISTORIES[:2], expert_actions=["up", None])[1]
    assert failed.text == "" and failed.finish_reason == "error" and "expert" in failed.error
    replies = RandomAgent(["a", "b"], seed=0).act(HISTORIES)
    assert {r.text for r in replies} <= {"a", "b"}
    assert [r.text for r in RandomAgent(seed=1).act(HISTORIES)] == [r.text for r in RandomAgent(seed=1).act(HISTORIES)]
    typed, shown = iter(["hint", "left"]), []
    reply = HumanAgent(input_fn=lambda prompt: next(typed), output_fn=shown.append).act(HISTORIES[:1], ["down"])
    assert reply[0].text == "left" and "hint: down" in shown and "[user] hello" in shown


class ChatCompletions(BaseHTTPRequestHandler):
    """A minimal chat-completions server: replies with the reversed last message; 'fail' gives a 400."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        last = body["messages"][-1]["content"]
        if last == "fail":
            self.send_response(400)
            payload = {"error": {"message": "bad request", "type": "invalid_request_error"}}
        else:
            self.send_response(200)
            payload = {
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": last[::-1]}}],
            }
        data = json.dumps(payload).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_openai_agent_against_a_local_server():
    server = HTTPServer(("127.0.0.1", 0), ChatCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        agent = OpenAIAgent("echo", base_url=url, api_key="k", max_retries=0)
        histories = HISTORIES + [[{"role": "user", "content": "fail"}]]
        replies = agent.act(histories)
        assert [r.text for r in replies[:3]] == ["olleh", "?snekot erom htiw ,noitseuq regnol a", "x"]
        assert replies[3].text == "" and replies[3].finish_reason == "error"
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ConnectionError, match="cannot reach"):
        OpenAIAgent("echo", base_url=url, max_retries=0, timeout=2).act(HISTORIES[:1])
