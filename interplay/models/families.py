"""Tiny random-init checkpoints of real model families, with their real tokenizers and chat templates.

The embedded ``tiny`` model has a character-level tokenizer and a compact template of its own; code
that must cope with real checkpoints (byte-level BPE and SentencePiece tokenizers, templates that
inject a default system prompt, trim content, drop earlier ``<think>`` blocks or reject a system
role, several eos ids) is tested against these instead.

``family_checkpoint(name, fixtures_dir)`` writes an ordinary Hugging Face checkpoint directory:
the family's real ``tokenizer.json`` / ``tokenizer_config.json`` / ``generation_config.json``
(from ``tests/fixtures/tokenizers/<family>/``, see ``build.py`` and ``SOURCE.md`` there) and a
random-init model of the family's transformers architecture, 2 layers wide 32, with the real
vocabulary size, float32, fixed seed. ``AutoTokenizer`` / ``AutoModelForCausalLM`` /
``GenerationConfig.from_pretrained`` load it offline. Attention is plain full causal attention in
every layer (no sliding window), so decoding with a KV cache matches a full forward pass; the
attention implementation is the loader's default (``sdpa``; transformers 5 does not save
``attn_implementation`` in ``config.json``), deterministic on CPU in float32.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

FORMAT = 1  # bump when the checkpoint layout changes: it is part of the cache key


@dataclass(frozen=True)
class Family:
    """One model family: where its tokenizer files are and which architecture it uses."""

    fixture: str  # directory under the fixtures dir with tokenizer_config.json, generation_config.json
    model_type: str  # transformers model_type of the tiny model
    config_class: str  # transformers config class
    model_class: str  # transformers causal-LM class
    vocab_size: int  # embedding rows, as the real config has them (>= len(tokenizer))
    tie_word_embeddings: bool  # as the family's small models
    rope_theta: float
    rms_norm_eps: float
    max_position_embeddings: int
    quirks: str  # what the chat template does that a naive caller would trip over
    tokenizer_json: str = ""  # fixture-relative tokenizer.json.xz; default: <fixture>/tokenizer.json.xz
    drop_added_tokens: tuple[str, ...] = ()  # added tokens of a shared tokenizer.json this family lacks
    reference: str = ""  # the hub model whose files these are

    @property
    def tokenizer_file(self) -> str:
        return self.tokenizer_json or f"{self.fixture}/tokenizer.json.xz"


FAMILIES: dict[str, Family] = {
    "qwen2_5": Family(
        fixture="qwen2_5", model_type="qwen2", config_class="Qwen2Config", model_class="Qwen2ForCausalLM",
        vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6,
        max_position_embeddings=32768,
        quirks="default system prompt ('You are Qwen, created by Alibaba Cloud. ...') when none is given; "
        "byte-level BPE; eos <|im_end|> + <|endoftext|>",
        tokenizer_json="qwen3/tokenizer.json.xz",
        drop_added_tokens=("<tool_response>", "</tool_response>", "<think>", "</think>"),
        reference="Qwen/Qwen2.5-0.5B-Instruct",
    ),
    "qwen3": Family(
        fixture="qwen3", model_type="qwen3", config_class="Qwen3Config", model_class="Qwen3ForCausalLM",
        vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6,
        max_position_embeddings=40960,
        quirks="thinking template: drops earlier <think> blocks, wraps the last assistant turn in "
        "<think>\\n\\n</think>; enable_thinking switch; no default system",
        reference="Qwen/Qwen3-0.6B",
    ),
    "llama3": Family(
        fixture="llama3", model_type="llama", config_class="LlamaConfig", model_class="LlamaForCausalLM",
        vocab_size=128256, tie_word_embeddings=False, rope_theta=500000.0, rms_norm_eps=1e-5,
        max_position_embeddings=8192,
        quirks="trims message content; no default system; bos in template and added by the tokenizer; "
        "eos <|eot_id|> + <|end_of_text|>",
        reference="meta-llama/Meta-Llama-3-8B-Instruct",
    ),
    "gemma3": Family(
        fixture="gemma3", model_type="gemma3_text", config_class="Gemma3TextConfig",
        # vocab_size: as the text config of the 4B+ models; must be >= the tokenizer's 262145
        model_class="Gemma3ForCausalLM", vocab_size=262208, tie_word_embeddings=True, rope_theta=1e6,
        rms_norm_eps=1e-6, max_position_embeddings=32768,
        quirks="folds system into first user turn; trims; bos in template; assistant role is 'model'; "
        "requires alternation; eos <end_of_turn> + <eos>",
        reference="google/gemma-3-1b-it",
    ),
    "mistral": Family(
        fixture="mistral", model_type="mistral", config_class="MistralConfig", model_class="MistralForCausalLM",
        vocab_size=32000, tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-5,
        max_position_embeddings=32768,
        quirks="no system role; requires alternation; sentencepiece (legacy); bos in template and "
        "added by the tokenizer; eos </s> + ' ' after each assistant turn",
        reference="mistralai/Mistral-7B-Instruct-v0.1",
    ),
}

# The tiny model's shape, the same for every family.
SHAPE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "head_dim": 8, "intermediate_size": 64, "seed": 0}


def _family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def _inputs(family: Family, fixtures: Path) -> dict[str, Path]:
    return {
        "tokenizer.json.xz": fixtures / family.tokenizer_file,
        "tokenizer_config.json": fixtures / family.fixture / "tokenizer_config.json",
        "generation_config.json": fixtures / family.fixture / "generation_config.json",
    }


def checkpoint_key(name: str, fixtures_dir: str | Path) -> str:
    """A hash of everything the checkpoint depends on: the family record, the shape, the fixture files."""
    family = _family(name)
    digest = hashlib.sha256(
        json.dumps({"family": asdict(family), "shape": SHAPE, "format": FORMAT}, sort_keys=True).encode()
    )
    for label, path in _inputs(family, Path(fixtures_dir)).items():
        digest.update(label.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def _model_config(family: Family, generation: dict):
    import inspect

    import transformers

    config_class = getattr(transformers, family.config_class)
    rope_parameters = "rope_parameters" in inspect.signature(config_class.__init__).parameters  # transformers 5
    eos = generation["eos_token_id"]
    kwargs = dict(
        vocab_size=family.vocab_size,
        hidden_size=SHAPE["hidden_size"],
        num_hidden_layers=SHAPE["num_hidden_layers"],
        num_attention_heads=SHAPE["num_attention_heads"],
        num_key_value_heads=SHAPE["num_key_value_heads"],
        head_dim=SHAPE["head_dim"],
        intermediate_size=SHAPE["intermediate_size"],
        max_position_embeddings=family.max_position_embeddings,
        rms_norm_eps=family.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": family.rope_theta},
        tie_word_embeddings=family.tie_word_embeddings,
        attention_dropout=0.0,
        bos_token_id=generation.get("bos_token_id"),
        eos_token_id=eos,
        pad_token_id=generation.get("pad_token_id"),
        dtype="float32",
    )
    if family.model_type == "qwen2":
        kwargs.pop("head_dim")  # Qwen2 derives it from hidden_size / num_attention_heads
    if family.model_type in ("qwen2", "qwen3"):
        kwargs["use_sliding_window"] = False
    if family.model_type == "mistral":
        kwargs["sliding_window"] = None  # v0.1 has 4096: full attention keeps cached decoding = forward
    if family.model_type == "gemma3_text":
        kwargs["query_pre_attn_scalar"] = SHAPE["head_dim"]
        kwargs["layer_types"] = ["full_attention"] * SHAPE["num_hidden_layers"]  # real: 5 sliding : 1 full
        kwargs["sliding_window"] = family.max_position_embeddings  # unused by full-attention layers
        kwargs["rope_parameters"] = {
            "full_attention": {"rope_type": "default", "rope_theta": family.rope_theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        }
        if not rope_parameters:
            kwargs["rope_local_base_freq"] = 10000.0
    if not rope_parameters:  # transformers 4: rope_theta is a config field of its own
        del kwargs["rope_parameters"]
        kwargs["rope_theta"] = family.rope_theta
    return config_class(**kwargs)


def _tokenizer_json(family: Family, compressed: Path) -> bytes:
    data = lzma.decompress(compressed.read_bytes())
    if not family.drop_added_tokens:
        return data
    tokenizer = json.loads(data)
    dropped = [t for t in tokenizer["added_tokens"] if t["content"] in family.drop_added_tokens]
    if len(dropped) != len(family.drop_added_tokens):
        raise ValueError(f"{compressed} lacks some of {family.drop_added_tokens}")
    # Only the highest ids can go: ids must stay contiguous.
    if min(t["id"] for t in dropped) <= max(t["id"] for t in tokenizer["added_tokens"] if t not in dropped):
        raise ValueError(f"{family.drop_added_tokens} are not the last added tokens of {compressed}")
    tokenizer["added_tokens"] = [t for t in tokenizer["added_tokens"] if t not in dropped]
    return json.dumps(tokenizer, indent=2, ensure_ascii=False).encode()


def build_family(name: str, fixtures_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the family's checkpoint (tokenizer files + tiny random-init model) to ``out_dir``."""
    import torch
    import transformers
    from transformers import GenerationConfig

    family = _family(name)
    inputs = _inputs(family, Path(fixtures_dir))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_bytes(_tokenizer_json(family, inputs["tokenizer.json.xz"]))
    shutil.copyfile(inputs["tokenizer_config.json"], out / "tokenizer_config.json")

    generation = json.loads(inputs["generation_config.json"].read_text(encoding="utf-8"))
    config = _model_config(family, generation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SHAPE["seed"])
        model = getattr(transformers, family.model_class)(config)
    model.generation_config = GenerationConfig(**generation)
    model.save_pretrained(out)
    shutil.copyfile(inputs["generation_config.json"], out / "generation_config.json")  # the file verbatim
    (out / "interplay_family.json").write_text(
        json.dumps({"family": name, **asdict(family), "shape": SHAPE}, indent=1)
    )
    return out


def family_checkpoint(name: str, fixtures_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The cached checkpoint directory of family ``name`` (see ``FAMILIES``), built on first use.

    ``cache_dir`` defaults to ``interplay.models.cache_dir()`` (``$INTERPLAY_CACHE``).
    """
    if cache_dir is None:
        from interplay.models import cache_dir as default_cache_dir

        cache_dir = default_cache_dir()
    from interplay.models import cached_checkpoint

    path = Path(cache_dir) / f"family-{name}-{checkpoint_key(name, fixtures_dir)}"
    return cached_checkpoint(path, lambda out: build_family(name, fixtures_dir, out))


__all__ = ["FAMILIES", "SHAPE", "Family", "build_family", "checkpoint_key", "family_checkpoint"]
