"""LoRA: settings from the API, YAML and flags; SFT and GRPO steps that train only the adapter; rollouts that
sample with it, token for token as TRL scores them; adapter directories that load, evaluate and chain."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from trl import GRPOConfig, SFTConfig

from interplay import cli, models
from interplay.agents import HFAgent, from_spec
from interplay.pipeline import get_preset, run_stage
from interplay.seeds import task_key
from interplay.training.common import lora_config
from interplay.training.config import GRPOTrainingConfig, ImitationConfig, LoraSettings
from interplay.training.grpo import build_grpo_trainer, grpo_defaults, make_rollout_func, train_grpo
from interplay.training.imitation import sft_defaults, train_imitation

pytest.importorskip("peft")

MAZE = "interplay/Maze-4x4-v0"
FAST_SFT = {"max_steps": 2, "per_device_train_batch_size": 8, "warmup_steps": 0, "logging_steps": 1,
            "save_strategy": "steps", "save_steps": 1, "disable_tqdm": True}
FAST_GRPO = {"max_steps": 1, "per_device_train_batch_size": 8, "num_generations": 4, "logging_steps": 1,
             "save_strategy": "no", "disable_tqdm": True}


def _weights(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(base weights by their plain name, adapter weights) of a PeftModel, copied."""
    base, adapter = {}, {}
    for name, param in model.named_parameters():
        if "lora_" in name:
            adapter[name] = param.detach().clone()
        else:
            base[name.replace("base_model.model.", "").replace(".base_layer", "")] = param.detach().clone()
    return base, adapter


def test_lora_settings_from_the_api_yaml_and_flags(tmp_path, monkeypatch):
    settings = LoraSettings(r=8, target_modules="q_proj, v_proj")
    assert settings.target_modules == ["q_proj", "v_proj"] and settings.scale_alpha == 16.0
    peft_config = lora_config(settings)
    assert (peft_config.r, peft_config.lora_alpha, peft_config.task_type) == (8, 16.0, "CAUSAL_LM")
    assert set(peft_config.target_modules) == {"q_proj", "v_proj"}
    assert not ImitationConfig().lora.enabled and GRPOTrainingConfig(lora={"r": 4}).lora.r == 4
    assert GRPOTrainingConfig(lora=2).lora == LoraSettings(r=2)
    for bad in ({"r": -1}, {"r": 4, "dropout": 1.0}, {"r": 4, "rank": 4}, {"r": 4, "target_modules": ","}):
        with pytest.raises(ValueError):
            ImitationConfig(lora=bad)

    seen = {}
    stage = cli._stage

    def capture(name):
        ours, trl_class, defaults, _ = stage(name)
        return ours, trl_class, defaults, lambda config, args, resume, **kwargs: seen.setdefault("config", config)

    monkeypatch.setattr(cli, "_stage", capture)
    yaml = tmp_path / "grpo.yaml"
    yaml.write_text("lora:\n  r: 4\n  target_modules: [q_proj, k_proj]\nlora_dropout: 0.05\nmax_steps: 1\n")
    with pytest.raises(AttributeError):  # the stand-in train function returns a config, not a result
        cli.main(["train", "grpo", "--config", str(yaml), "--lora-alpha", "4", "--output-dir", str(tmp_path / "o")])
    assert seen["config"].lora == LoraSettings(r=4, alpha=4.0, target_modules=["q_proj", "k_proj"], dropout=0.05)
    seen.clear()
    with pytest.raises(AttributeError):
        cli.main(["train", "sft", "--lora-r", "16", "--lora-target-modules", "all-linear", "--output-dir", str(tmp_path / "s")])
    assert seen["config"].lora == LoraSettings(r=16)


def test_lora_sft_trains_the_adapter_only_and_its_checkpoints_load_and_evaluate(tmp_path, capsys):
    config = ImitationConfig(episodes=16, eval_episodes=2, max_new_tokens=2, lora=LoraSettings(r=4))
    train_imitation(config, SFTConfig(output_dir=str(tmp_path), **sft_defaults(**FAST_SFT)), progress=False)
    for folder in (tmp_path, tmp_path / "checkpoint-2"):
        saved = json.loads((folder / "adapter_config.json").read_text())
        assert saved["base_model_name_or_path"] == "tiny" and saved["r"] == 4  # portable: resolves anywhere
        assert (folder / "adapter_model.safetensors").exists() and not (folder / "model.safetensors").exists()

    active, tokenizer = models.load(tmp_path, adapter="active")
    base, adapter = _weights(active)
    untouched = dict(models.load("tiny")[0].named_parameters())
    assert set(base) == set(untouched) and all(torch.equal(base[k], untouched[k]) for k in base)
    assert adapter and any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at 0

    # Merged (what evaluation loads) and live adapter give the same logits.
    merged, _ = models.load(tmp_path)
    ids = torch.tensor([tokenizer.encode("<|user|>at (0,0)<|end|><|assistant|>")])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, active(ids).logits, rtol=0, atol=1e-5)
        assert not torch.allclose(merged(ids).logits, models.load("tiny")[0](ids).logits, atol=1e-5)
    agent = from_spec(str(tmp_path / "checkpoint-2"), temperature=0.0, max_new_tokens=2)
    assert isinstance(agent, HFAgent) and len(agent.act([[{"role": "user", "content": "at (0,0)"}]])) == 1
    assert cli.main(["eval", "--env", MAZE, "--model", str(tmp_path), "-n", "2", "--max-new-tokens", "2",
                     "--max-turns", "2", "--out", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["n_episodes"] == 2
    capsys.readouterr()
    from interplay.doctor import diagnose

    assert diagnose(str(tmp_path))["family"] == "llama"  # the base's configs


def test_lora_grpo_samples_with_the_adapter_as_trl_scores_it_and_trains_only_the_adapter(tmp_path):
    config = GRPOTrainingConfig(model="tiny", max_turns=3, max_new_tokens=3, eval_episodes=2, lora=LoraSettings(r=4))
    # beta > 0: the KL to the reference (the adapter switched off) has a gradient even where every episode of a
    # group gets the same reward, as an untrained model's do.
    args = GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**{**FAST_GRPO, "beta": 0.04}))
    trainer, _ = build_grpo_trainer(config, args)
    model = trainer.accelerator.unwrap_model(trainer.model)
    torch.manual_seed(0)
    with torch.no_grad():  # a fresh adapter is a no-op (B = 0): give it weight so that it shows
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.3)
    base, adapter = _weights(model)

    out = make_rollout_func(config)([task_key(MAZE, 5)] * 2 + [task_key(MAZE, 6)] * 2, trainer)
    worst, shift = 0.0, 0.0
    for prompt, completion, mask, recorded in zip(out["prompt_ids"], out["completion_ids"], out["env_mask"],
                                                  out["logprobs"]):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            forced = trainer._get_per_token_logps_and_entropies(model, ids, torch.ones_like(ids), len(completion))[0][0]
            with model.disable_adapter():
                plain = trainer._get_per_token_logps_and_entropies(model, ids, torch.ones_like(ids), len(completion))[0][0]
        agent = torch.tensor(mask, dtype=torch.bool)
        worst = max(worst, (forced[agent] - torch.tensor(recorded)[agent]).abs().max().item())
        shift = max(shift, (plain[agent] - forced[agent]).abs().max().item())
    assert worst < 1e-4 and shift > 1e-2  # sampled with the adapter on, scored alike by TRL's forward

    trainer.train()
    trained_base, trained_adapter = _weights(model)
    assert all(torch.equal(base[k], trained_base[k]) for k in base)
    assert any(not torch.equal(adapter[k], trained_adapter[k]) for k in adapter)


def test_grpo_continues_an_sft_adapter_or_trains_it_merged(tmp_path):
    sft = tmp_path / "sft"
    train_imitation(ImitationConfig(episodes=8, eval_episodes=1, max_new_tokens=2, lora=LoraSettings(r=4)),
                    SFTConfig(output_dir=str(sft), **sft_defaults(**{**FAST_SFT, "max_steps": 1})), progress=False)
    grpo = GRPOTrainingConfig(model=str(sft), max_turns=2, max_new_tokens=2, eval_episodes=1, lora=LoraSettings(r=4))
    train_grpo(grpo, GRPOConfig(output_dir=str(tmp_path / "grpo"), **grpo_defaults(**FAST_GRPO)))
    saved = json.loads((tmp_path / "grpo" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "tiny"  # the same adapter, trained on: one level over the base
    assert models.adapter_base(tmp_path / "grpo") == "tiny" and models.load(tmp_path / "grpo")[0] is not None

    with pytest.raises(ValueError, match="continues training it"):
        build_grpo_trainer(GRPOTrainingConfig(model=str(sft), lora=LoraSettings(r=8)),
                           GRPOConfig(output_dir=str(tmp_path / "x"), **grpo_defaults(**FAST_GRPO)))
    full = GRPOTrainingConfig(model=str(sft), max_turns=2, max_new_tokens=2, eval_episodes=1)  # r = 0: merged
    train_grpo(full, GRPOConfig(output_dir=str(tmp_path / "full"), **grpo_defaults(**FAST_GRPO)))
    assert (tmp_path / "full" / "config.json").exists() and not (tmp_path / "full" / "adapter_config.json").exists()


def test_the_pipeline_chains_a_lora_sft_adapter_into_grpo(tmp_path):
    base = get_preset("tiny-test")
    with pytest.raises(ValueError, match="continue the SFT stage's LoRA adapter"):
        dataclasses.replace(base, sft=dataclasses.replace(base.sft, lora=LoraSettings(r=4)),
                            grpo=dataclasses.replace(base.grpo, lora=LoraSettings(r=8)))
    preset = dataclasses.replace(base, sft=dataclasses.replace(base.sft, lora=LoraSettings(r=4)),
                                 grpo=dataclasses.replace(base.grpo, lora=LoraSettings(r=4)), eval_tasks=2,
                                 sft_args={**base.sft_args, "max_steps": 1}, grpo_args={**base.grpo_args, "max_steps": 1})
    for stage in ("sft", "grpo"):
        result = run_stage(preset, stage, tmp_path, preset.model, progress=False, log=lambda _: None)
        assert models.adapter_base(result["model"]) == "tiny"  # GRPO trained the SFT adapter on
    assert json.loads((tmp_path / "checkpoints" / "grpo" / "adapter_config.json").read_text())["r"] == 4


def test_a_missing_peft_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_peft(name, *args, **kwargs):
        if name == "peft" or name.startswith("peft."):
            raise ImportError("No module named 'peft'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_peft)
    with pytest.raises(RuntimeError, match=r"pip install 'interplay\[lora\]'"):
        lora_config(LoraSettings(r=4))
