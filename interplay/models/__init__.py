"""The embedded default model: a small Llama built from config and a character-level tokenizer.

Why Llama and not Qwen2 (which differs only by the q/k/v biases): transformers 5 forces ``Qwen2Tokenizer`` (byte-level BPE) onto every ``qwen2`` checkpoint
in ``AutoTokenizer``, which silently drops newlines and unknown characters of a character-level
vocabulary; a ``llama`` checkpoint loads the saved tokenizer as it is.

Nothing is downloaded: ``build_tiny`` creates the model with a fixed seed and saves it as an
ordinary Hugging Face checkpoint directory, which ``AutoModelForCausalLM`` / ``AutoTokenizer``
load like any other. ``load("tiny")`` builds it once and caches it; any other name is an HF id or
a local path.

A LoRA adapter directory (``adapter_config.json``, as LoRA training saves it) loads as its base
model (``base_model_name_or_path``: "tiny", a catalogue name, a path, an HF id, or another adapter
directory) with the adapter on top; see ``load`` for merged or live adapters.

The chat template puts two special tokens around every message and one as the generation prompt:
``<|user|>hello<|end|><|assistant|>`` — 3 tokens of overhead per environment turn, and the
assistant's reply ends with ``<|end|>``, which is also the eos token.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TINY = "tiny"
PAD, UNK, EOS = "<pad>", "<unk>", "<|end|>"
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
# Printable ASCII (space..~), tab and newline, and a few unicode characters environments and
# teachers like to print; anything else becomes <unk>.
CHARACTERS = (
    "".join(chr(c) for c in range(32, 127)) + "\t\n" + "…—–’‘“”×÷±≤≥≠√π°·→←↑↓█░"
)
assert len(set(CHARACTERS)) == len(CHARACTERS) and set(string.ascii_letters) <= set(CHARACTERS)

# {% generation %} marks assistant tokens for TRL/transformers `return_assistant_tokens_mask`.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('role must be system, user or assistant, got ' + message['role']) }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{%- else -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


@dataclass(frozen=True)
class TinyConfig:
    """Size of the embedded model. The defaults (≈0.6M parameters) learn the built-in tasks on a CPU."""

    hidden_size: int = 96
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 384
    max_position_embeddings: int = 8192
    seed: int = 0

    def key(self) -> str:
        """A hash of everything the built checkpoint depends on (names its cache directory)."""
        spec = {"config": asdict(self), "chars": CHARACTERS, "template": CHAT_TEMPLATE, "format": 1}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def build_tokenizer() -> Any:
    """The character-level tokenizer: one token per character, specials first."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, UNK, EOS, *ROLE_TOKENS.values()]
    vocab = {token: i for i, token in enumerate(specials + list(CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=EOS,
        additional_special_tokens=list(ROLE_TOKENS.values()),
        padding_side="left",
        model_max_length=TinyConfig.max_position_embeddings,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny(out_dir: str | os.PathLike, config: TinyConfig | None = None) -> Path:
    """Build the tiny model + tokenizer (deterministic for a given config) and save them to ``out_dir``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = config or TinyConfig()
    tokenizer = build_tokenizer()
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        attention_dropout=0.0,
        attention_bias=True,  # as Qwen2's q/k/v projections
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(model_config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "interplay_tiny.json").write_text(json.dumps(asdict(config), indent=1))
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("INTERPLAY_CACHE", Path.home() / ".cache" / "interplay"))


def tiny_path(config: TinyConfig | None = None) -> Path:
    """The cached checkpoint directory of the tiny model, built on first use."""
    config = config or TinyConfig()
    return cached_checkpoint(cache_dir() / f"tiny-{config.key()}", lambda out: build_tiny(out, config))


def cached_checkpoint(path: Path, build: Callable[[Path], Any]) -> Path:
    """``path`` once it holds a checkpoint, built by ``build(directory)`` on first use."""
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target and rename: parallel processes never see a half-written checkpoint.
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        build(tmp)
        try:
            tmp.rename(path)
        except OSError:  # another process won the race
            if not (path / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def resolve(name_or_path: str | os.PathLike) -> str:
    """``"tiny"`` -> the cached tiny checkpoint; a catalogue name (``"smollm2-135m"``) -> its checkpoint
    (:mod:`interplay.models.catalogue`); a local directory -> itself; anything else unchanged."""
    from interplay.models import catalogue

    name = str(name_or_path)
    if name == TINY:
        return str(tiny_path())
    if catalogue.is_catalogued(name):
        return str(catalogue.resolve_catalogued(name))
    return name


def _from_pretrained(loader: Any, name: str, **kwargs: Any) -> Any:
    from interplay.models import catalogue

    looks_local = name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]
    if looks_local and not Path(name).expanduser().exists():
        raise FileNotFoundError(
            f"model path {name!r} does not exist. Pass 'tiny' (the embedded model), a catalogue name "
            f"({', '.join(catalogue.CATALOGUE)}), a checkpoint "
            "directory (e.g. from `interplay model tiny --out DIR`), or a Hugging Face model id."
        )
    try:
        return loader.from_pretrained(str(Path(name).expanduser()) if looks_local else name, **kwargs)
    except OSError as error:
        raise OSError(
            f"could not load {name!r}: it is neither a local checkpoint directory nor a Hugging Face id "
            f"available offline (in the local HF cache). Pass 'tiny', a directory, or download the model "
            f"first. Underlying error: {str(error).splitlines()[0]}"
        ) from error


ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_MODES = ("merge", "active", "trainable")


def require_peft() -> Any:
    """The ``peft`` module, or an error that says how to install it."""
    try:
        import peft
    except ImportError as error:
        raise RuntimeError("LoRA adapters need peft: pip install 'interplay[lora]'") from error
    return peft


def adapter_base(name_or_path: str | os.PathLike) -> str | None:
    """The base model of a LoRA adapter directory (its ``base_model_name_or_path``); None for anything else."""
    config = Path(resolve(name_or_path)).expanduser() / ADAPTER_CONFIG
    if not config.is_file():
        return None
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config} names no base_model_name_or_path: write the base model's name or path there.")
    return str(base)


def weights_root(name_or_path: str | os.PathLike) -> str:
    """The full checkpoint under a chain of adapter directories (``name_or_path`` itself when it is not one)."""
    name, seen = str(name_or_path), set()
    while (base := adapter_base(name)) is not None:
        if name in seen:
            raise ValueError(f"adapter directory {name} is its own base (base_model_name_or_path loops).")
        seen.add(name)
        name = base
    return name


def portable_name(name_or_path: str | os.PathLike) -> str:
    """How an adapter should record its base: "tiny" and catalogue names as they are (they resolve on any
    machine), a local directory as an absolute path, anything else (an HF id) unchanged."""
    from interplay.models import catalogue

    name = str(name_or_path)
    if name == TINY or catalogue.is_catalogued(name):
        return name
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def load_tokenizer(name_or_path: str | os.PathLike = TINY) -> Any:
    """The tokenizer of ``load(name_or_path)``, without loading the model (an adapter directory without
    tokenizer files: its base's)."""
    from transformers import AutoTokenizer

    path = resolve(name_or_path)
    if adapter_base(path) is not None and not (Path(path).expanduser() / "tokenizer_config.json").is_file():
        return load_tokenizer(adapter_base(path))
    tokenizer = _from_pretrained(AutoTokenizer, path)
    if tokenizer.pad_token is None:  # batched generation left-pads
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load(name_or_path: str | os.PathLike = TINY, *, adapter: str = "merge", **model_kwargs: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``"tiny"``, a catalogue name, a checkpoint directory, an HF id, or a LoRA
    adapter directory.

    ``model_kwargs`` go to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``dtype=torch.bfloat16``).

    ``adapter`` says what an adapter directory becomes (anything else ignores it):

    - ``"merge"`` (default): base + adapter merged into a plain model (``merge_and_unload``). The logits
      are the adapted model's (to float rounding: bf16 weights round once more when merged), and sampling
      skips the adapter's extra matrix products, so this is what evaluation and ``HFAgent`` use.
    - ``"active"``: a ``peft.PeftModel`` with the adapter on, frozen.
    - ``"trainable"``: a ``peft.PeftModel`` whose adapter trains further (how a LoRA run continues one).
    """
    from transformers import AutoModelForCausalLM

    if adapter not in ADAPTER_MODES:
        raise ValueError(f"adapter must be one of {ADAPTER_MODES}, got {adapter!r}.")
    path = resolve(name_or_path)
    base = adapter_base(path)
    if base is not None:
        return _load_adapter(path, base, adapter, **model_kwargs)
    tokenizer = load_tokenizer(path)
    model = _from_pretrained(AutoModelForCausalLM, path, **model_kwargs)
    return model, tokenizer


def _load_adapter(path: str, base: str, mode: str, **model_kwargs: Any) -> tuple[Any, Any]:
    """The base model (itself loaded merged, should it be an adapter too) with the adapter at ``path``."""
    peft = require_peft()
    model, _ = load(base, **model_kwargs)
    model = peft.PeftModel.from_pretrained(model, str(Path(path).expanduser()), is_trainable=mode == "trainable")
    if mode == "merge":
        model = model.merge_and_unload()
        model.requires_grad_(True)  # peft froze the base; a merged model trains like any loaded one
        model.name_or_path = path  # the merged model is the adapter directory's model
    return model, load_tokenizer(path)


__all__ = ["ADAPTER_CONFIG", "TINY", "TinyConfig", "adapter_base", "build_tiny", "build_tokenizer", "cached_checkpoint", "load",
           "load_tokenizer", "portable_name", "require_peft", "tiny_path", "weights_root"]
