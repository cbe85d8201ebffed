"""Tiny checkpoints of five real model families: real tokenizers and chat templates, random-init models."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from interplay.models.families import FAMILIES, checkpoint_key, family_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "tokenizers"
TWO_TURNS = [{"role": "user", "content": " Hi\nthere "}, {"role": "assistant", "content": "Hello!"}]

# name -> (tokenizer class names (transformers 5 first), len(tokenizer), the tokenizer's (bos, eos, pad) ids,
#          generation_config's (bos, eos, pad) ids)
EXPECTED = {
    "qwen2_5": ({"Qwen2Tokenizer", "Qwen2TokenizerFast"}, 151665, (None, 151645, 151643),
                (151643, [151645, 151643], 151643)),
    "qwen3": ({"Qwen2Tokenizer", "Qwen2TokenizerFast"}, 151669, (None, 151645, 151643),
              (151643, [151645, 151643], 151643)),
    "llama3": ({"TokenizersBackend", "PreTrainedTokenizerFast"}, 128256, (128000, 128009, None),
               (128000, [128001, 128009], None)),
    "gemma3": ({"GemmaTokenizer", "GemmaTokenizerFast"}, 262145, (2, 106, 0), (2, [1, 106], 0)),
    "mistral": ({"TokenizersBackend", "LlamaTokenizerFast"}, 32000, (1, 2, None), (1, 2, None)),
}
RENDERED = {
    "qwen2_5": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n Hi\nthere <|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n",
    "qwen3": "<|im_start|>user\n Hi\nthere <|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n",
    "llama3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi\nthere<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>",
    "gemma3": "<bos><start_of_turn>user\nHi\nthere<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n",
    "mistral": "<s>[INST]  Hi\nthere  [/INST]Hello!</s> ",
}


@pytest.fixture(scope="session")
def loaded(tmp_path_factory):
    """Every family built once into a temporary cache and loaded: name -> (path, tokenizer, model, gen)."""
    cache = tmp_path_factory.mktemp("families")
    out, seconds = {}, {}
    for name in FAMILIES:
        start = time.perf_counter()
        path = family_checkpoint(name, FIXTURES, cache)
        built = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        generation = GenerationConfig.from_pretrained(path)
        out[name] = (path, tokenizer, model, generation)
        seconds[name] = (built - start, time.perf_counter() - built)
    print("\nfamily checkpoints (build s, load s):",
          ", ".join(f"{name} {b:.2f}/{load:.2f}" for name, (b, load) in seconds.items()),
          f"total {sum(map(sum, seconds.values())):.1f}s")
    return out


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_loads_offline_with_its_real_ids(loaded, name):
    path, tokenizer, model, generation = loaded[name]
    classes, length, tokenizer_ids, generation_ids = EXPECTED[name]
    family = FAMILIES[name]
    assert type(tokenizer).__name__ in classes
    assert len(tokenizer) == length <= model.config.vocab_size == family.vocab_size
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == tokenizer_ids
    assert (generation.bos_token_id, generation.eos_token_id, generation.pad_token_id) == generation_ids
    assert model.config.eos_token_id == generation.eos_token_id
    assert model.config.model_type == family.model_type and type(model).__name__ == family.model_class
    assert model.dtype == torch.float32 and model.config.tie_word_embeddings == family.tie_word_embeddings
    assert set(getattr(model.config, "layer_types", None) or ["full_attention"]) == {"full_attention"}

    # Newlines, runs of spaces, unicode and the special tokens survive a round trip.
    specials = "".join(t for t in (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) if t)
    text = f"Line one\n\n  indented\ttab\r\n12345 ünï 日本 😀 {specials} end\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert all(tokenizer.convert_tokens_to_ids(t) in ids for t in (tokenizer.eos_token, tokenizer.pad_token) if t)

    input_ids = torch.tensor([ids[:12]])
    with torch.no_grad():
        logits = model(input_ids).logits
        generated = model.generate(input_ids, max_new_tokens=3, do_sample=False, output_scores=True,
                                   return_dict_in_generate=True, pad_token_id=tokenizer.eos_token_id)
        full = model(generated.sequences).logits
    assert logits.shape == (1, 12, family.vocab_size) and torch.isfinite(logits).all()
    # Cached decoding = a full forward pass (no sliding window, no surprises).
    for step, scores in enumerate(generated.scores):
        torch.testing.assert_close(scores[0], full[0, 11 + step], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_template_renders_two_turns(loaded, name):
    _, tokenizer, _, _ = loaded[name]
    rendered = tokenizer.apply_chat_template(TWO_TURNS, tokenize=False)
    assert rendered == RENDERED[name]
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:  # the template writes bos once; the tokenizer must not add another
        assert ids.count(tokenizer.bos_token_id) == 1
    prompt = tokenizer.apply_chat_template(TWO_TURNS[:1], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith(prompt) or name == "qwen3"  # Qwen3 adds an empty think block to the last reply


def test_template_quirks(loaded):
    tokenizers = {name: loaded[name][1] for name in FAMILIES}
    system = [{"role": "system", "content": "S"}, *TWO_TURNS]
    assert tokenizers["gemma3"].apply_chat_template(system, tokenize=False).startswith(
        "<bos><start_of_turn>user\nS\n\nHi\nthere<end_of_turn>")  # system folded into the first user turn
    with pytest.raises(Exception, match="roles must alternate"):
        tokenizers["mistral"].apply_chat_template(system, tokenize=False)
    earlier = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "<think>r1</think>a1"},
               {"role": "user", "content": "q2"}]
    qwen3 = tokenizers["qwen3"].apply_chat_template(earlier, tokenize=False, add_generation_prompt=True,
                                                    enable_thinking=False)
    assert "r1" not in qwen3 and qwen3.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # Qwen3's extra added tokens are single tokens there and plain text for Qwen2.5.
    assert len(tokenizers["qwen3"]("<think>", add_special_tokens=False)["input_ids"]) == 1
    assert len(tokenizers["qwen2_5"]("<think>", add_special_tokens=False)["input_ids"]) > 1


def test_mistral_chat_matches_mistral_common(loaded):
    """mistral-common's v1 encoding of a 3-message chat (Mistral's cookbook) = template + tokenizer."""
    tokenizer = loaded["mistral"][1]
    chat = [{"role": "user", "content": "user message"}, {"role": "assistant", "content": " assistant message"},
            {"role": "user", "content": "new user message"}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    assert tokenizer(rendered, add_special_tokens=False)["input_ids"] == [
        1, 733, 16289, 28793, 2188, 2928, 733, 28748, 16289, 28793, 13892, 2928, 2,
        733, 16289, 28793, 633, 2188, 2928, 733, 28748, 16289, 28793]


def test_checkpoints_are_cached_by_content(loaded, tmp_path):
    path = loaded["mistral"][0]
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert family_checkpoint("mistral", FIXTURES, path.parent) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert path.name == f"family-mistral-{checkpoint_key('mistral', FIXTURES)}"
    assert checkpoint_key("qwen2_5", FIXTURES) != checkpoint_key("qwen3", FIXTURES)
    with pytest.raises(KeyError, match="unknown model family"):
        family_checkpoint("gpt2", FIXTURES, tmp_path)
