"""Training on several processes: ``accelerate launch --multi_gpu --num_processes 2`` on the CPU (gloo).

On a machine without a GPU the processes need ``--use-cpu true``: ``accelerate launch --cpu --num_processes 2``
starts one process (several CPU processes need mpirun), and ``--multi_gpu`` without ``--use-cpu`` starts two
processes that each train alone (interplay refuses that, ``check_launch``). The launches run
``tests/fixtures/spy_cli.py``: ``interplay.cli`` plus spies that write, per process, the GRPO groups the reward
function saw, the saves it ran and a digest of its trained parameters.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from safetensors.torch import load_file
from trl import GRPOConfig

from interplay import models
from interplay.training.common import check_launch
from interplay.training.grpo import GRPOTrainingConfig, build_grpo_trainer, grpo_defaults, parameter_sharding

SPY = Path(__file__).parent / "fixtures" / "spy_cli.py"
# Two optimizer steps of tiny episodes, a checkpoint at each, the held-out score on two tasks.
FAST = ["--model", "tiny", "--max-new-tokens", "4", "--eval-episodes", "2", "--max-steps", "2", "--logging-steps",
        "1", "--save-strategy", "steps", "--save-steps", "1", "--disable-tqdm", "true", "--report-to", "none"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp_path: Path, *args: str, use_cpu: bool = True) -> tuple[subprocess.CompletedProcess, dict]:
    spy = tmp_path / "spy"
    spy.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", INTERPLAY_SPY_DIR=str(spy), TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), str(SPY), *args, *(["--use-cpu", "true"] if use_cpu else [])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    records = {rank: [json.loads(line) for line in (spy / f"rank{rank}.jsonl").read_text().splitlines()]
               for rank in (0, 1) if (spy / f"rank{rank}.jsonl").exists()}
    return done, records


def events(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["event"] == kind]


def parameter_hash(directory: Path) -> str:
    import hashlib

    model, _ = models.load(directory)
    digest = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(p.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_saved_once(out: Path, records: dict[int, list]) -> None:
    """Checkpoints 1 and 2 and the final model, written by process 0 alone, loadable, = the trained weights."""
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    for checkpoint in out.glob("checkpoint-*"):
        # One RNG state per process (a distributed save), no single-process rng_state.pth.
        assert sorted(p.name for p in checkpoint.glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
        assert load_file(checkpoint / "model.safetensors")
    assert [r["dir"] for r in events(records[0], "save")] == ["checkpoint-1", "checkpoint-2", out.name]
    assert events(records[1], "save") == []
    [trained0], [trained1] = events(records[0], "trained"), events(records[1], "trained")
    # Both processes ran as one job (what check_multiprocess and check_launch read: args.world_size).
    assert trained0["world_size"] == trained1["world_size"] == 2
    assert trained0["hash"] == trained1["hash"] == parameter_hash(out) == parameter_hash(out / "checkpoint-2")
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


def test_grpo_on_two_processes_keeps_groups_whole_gathers_metrics_and_saves_once(tmp_path):
    out = tmp_path / "grpo"
    # per_device_train_batch_size 2 < num_generations 4: the loss micro-batches split groups, but each
    # process generates 2 × 4 (gradient_accumulation_steps) = 8 episodes, two whole groups.
    done, records = launch(tmp_path, "train", "grpo", *FAST, "--output-dir", str(out), "--max-turns", "3",
                           "--num-generations", "4", "--per-device-train-batch-size", "2",
                           "--gradient-accumulation-steps", "4", "--exploration", "outcome_count:0.1")
    assert done.returncode == 0, done.stderr[-3000:]
    rewards = {rank: events(records[rank], "reward") for rank in (0, 1)}
    assert [r["step"] for r in rewards[0]] == [r["step"] for r in rewards[1]] == [0, 1]
    for rank in (0, 1):
        assert [r["group_sizes"] for r in rewards[rank]] == [[4, 4], [4, 4]]  # whole groups, every process
    for step in (0, 1):
        assert not set(rewards[0][step]["tasks"]) & set(rewards[1][step]["tasks"])  # no group on both processes

    # The logged episode metrics are means over both processes' episodes (TRL gathers log_metric values).
    history = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    logged = [e for e in history if "episode/invalid_rate" in e]
    assert [e["step"] for e in logged] == [1, 2]
    for step, entry in enumerate(logged):
        per_rank = [rewards[rank][step] for rank in (0, 1)]
        invalid = [sum(r["invalid_actions"]) / max(sum(r["turns"]), 1) for r in per_rank]
        turns = [sum(r["turns"]) / len(r["turns"]) for r in per_rank]
        success = [sum(r["success"]) / len(r["success"]) for r in per_rank]
        assert entry["episode/invalid_rate"] == pytest.approx(sum(invalid) / 2, abs=1e-6)
        assert entry["episode/mean_turns"] == pytest.approx(sum(turns) / 2, abs=1e-6)
        assert entry["episode/success_rate"] == pytest.approx(sum(success) / 2, abs=1e-6)
        assert "explore/outcome_count" in entry
        assert entry["num_tokens"] > 0
    check_saved_once(out, records)


def test_sft_on_two_processes_saves_once(tmp_path):
    out = tmp_path / "sft"
    done, records = launch(tmp_path, "train", "sft", *FAST, "--output-dir", str(out), "--max-turns", "4",
                           "--episodes", "16", "--per-device-train-batch-size", "4", "--warmup-steps", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    assert [e["step"] for e in history if "loss" in e] == [1, 2]
    check_saved_once(out, records)


@pytest.mark.slow
def test_processes_the_trainer_does_not_see_are_refused_before_training(tmp_path):
    # --multi_gpu on a machine without GPU and without --use-cpu: two processes that would each train alone.
    # (With a GPU, this launch is a real two-process run: nothing to check here.)
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without GPU")
    done, records = launch(tmp_path, "train", "grpo", *FAST, "--output-dir", str(tmp_path / "out"), use_cpu=False)
    assert done.returncode != 0
    assert "the trainer sees one" in done.stderr and "--use-cpu true" in done.stderr
    assert not (tmp_path / "out").exists() and not records


def test_check_launch_refuses_processes_outside_the_distributed_job(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="trainer sees one"):
        check_launch(SimpleNamespace(world_size=1))
    check_launch(SimpleNamespace(world_size=2))
    monkeypatch.delenv("WORLD_SIZE")
    check_launch(SimpleNamespace(world_size=1))


def grpo_args(**fields) -> SimpleNamespace:
    base = {"world_size": 2, "num_generations": 4, "per_device_train_batch_size": 4, "steps_per_generation": 1,
            "fsdp": None, "fsdp_plugin_args": None, "deepspeed_plugin": None}
    return SimpleNamespace(**{**base, **fields})


def test_a_generation_batch_that_would_split_a_group_across_processes_is_refused():
    from interplay.training.grpo import check_multiprocess

    check_multiprocess(grpo_args())
    check_multiprocess(grpo_args(per_device_train_batch_size=2, steps_per_generation=2))  # 4 per generation
    check_multiprocess(grpo_args(per_device_train_batch_size=2, world_size=1))  # one process: TRL's own check
    with pytest.raises(ValueError, match=r"2 × 1 = 2 episodes .* per_device_train_batch_size=4"):
        check_multiprocess(grpo_args(per_device_train_batch_size=2))
    with pytest.raises(ValueError, match=r"6 × 1 = 6 episodes .* per_device_train_batch_size=8"):
        check_multiprocess(grpo_args(per_device_train_batch_size=6))
    with pytest.raises(ValueError, match=r"3 × 2 = 6 .* per_device_train_batch_size=4"):
        check_multiprocess(grpo_args(per_device_train_batch_size=3, steps_per_generation=2))


def test_sharded_parameters_are_detected(monkeypatch):
    for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE"):
        monkeypatch.delenv(name, raising=False)
    assert parameter_sharding(grpo_args()) is None
    assert parameter_sharding(grpo_args(deepspeed_plugin=SimpleNamespace(zero_stage=2))) is None
    assert parameter_sharding(grpo_args(deepspeed_plugin=SimpleNamespace(zero_stage=3))) == "DeepSpeed ZeRO-3"
    assert parameter_sharding(grpo_args(fsdp=True)) == "FSDP"
    built = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=object(), deepspeed_plugin=None))
    assert parameter_sharding(grpo_args(), built) == "FSDP"
    built = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=None, deepspeed_plugin=SimpleNamespace(zero_stage=3)))
    assert parameter_sharding(grpo_args(), built) == "DeepSpeed ZeRO-3"
    # What `accelerate launch --use_fsdp` / `--use_deepspeed --zero_stage 3` put in the environment.
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    assert parameter_sharding(grpo_args()) is None
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert parameter_sharding(grpo_args()) == "DeepSpeed ZeRO-3"
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert parameter_sharding(grpo_args()) == "FSDP"


def test_build_grpo_trainer_refuses_fsdp_before_loading_the_model(tmp_path, monkeypatch):
    args = GRPOConfig(output_dir=str(tmp_path), fsdp=True, **grpo_defaults(per_device_train_batch_size=8,
                                                                          num_generations=4))
    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(ValueError, match=r"FSDP shards .*unwrap_model.*DDP\) or DeepSpeed ZeRO stage 1 or 2"):
        build_grpo_trainer(GRPOTrainingConfig(model="tiny"), args)
