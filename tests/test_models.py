"""The embedded tiny model: built from config, saved as an HF checkpoint, reloaded by the Auto classes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from interplay import models
from interplay.agents.chat import ChatEncoder


def test_tiny_builds_and_reloads_from_disk(tmp_path):
    path = models.build_tiny(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert 550_000 < sum(p.numel() for p in model.parameters()) < 650_000
    assert model.config.tie_word_embeddings and model.config.hidden_size == 96
    # Deterministic build: a second build has the same weights.
    again = models.build_tiny(tmp_path / "again")
    ids = torch.tensor([tokenizer("hello\nworld", add_special_tokens=False)["input_ids"]])
    other = AutoModelForCausalLM.from_pretrained(again)
    torch.testing.assert_close(model(ids).logits, other(ids).logits)

    text = "Go left!\n\tx = 3 × 4 → 12 ≤ 13 ~{}|"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tokenizer.decode(ids) == text  # one token per character
    assert tokenizer("☃", add_special_tokens=False)["input_ids"] == [tokenizer.unk_token_id]
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token == "<|end|>"


def test_chat_template_is_compact_and_incremental():
    tokenizer = models.load_tokenizer("tiny")
    history = [{"role": "system", "content": "S"}, {"role": "user", "content": "obs"}]
    rendered = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|system|>S<|end|><|user|>obs<|end|><|assistant|>"
    encoder = ChatEncoder(tokenizer)
    # An environment turn costs its characters plus 3 template tokens.
    delta = encoder.delta([{"role": "user", "content": "next"}], system="S")
    assert tokenizer.decode(delta) == "<|user|>next<|end|><|assistant|>" and len(delta) == 4 + 3
    # A reply's end-of-turn id is eos, which the model samples: nothing more closes it.
    assert encoder.close_ids == [tokenizer.eos_token_id] and encoder.close(encoder.reply_ids("r")) == []
    with pytest.raises(Exception, match="role must be"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_load_caches_the_tiny_model(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERPLAY_CACHE", str(tmp_path))
    model, tokenizer = models.load("tiny")
    [path] = tmp_path.glob("tiny-*")
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    models.load("tiny")
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    small = models.tiny_path(models.TinyConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                               intermediate_size=64))
    assert small != path and AutoModelForCausalLM.from_pretrained(small).config.hidden_size == 32


def test_load_reports_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*tiny"):
        models.load(str(tmp_path / "no-such-model"))
