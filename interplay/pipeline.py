"""The imitation → RL → exploration pipeline: one command that tells the whole story on one environment.

Stages, each from the previous checkpoint, all evaluated on the same held-out tasks (EVAL seeds):

1. ``untrained``: the starting model as it is.
2. ``sft``: imitation, SFT on expert episodes (``interplay.training.imitation``).
3. ``grpo``: multi-turn GRPO from the SFT checkpoint (``interplay.training.grpo``).
4. ``grpo_explore``: GRPO + an exploration shaper, from the SAME SFT checkpoint, at the SAME budget
   (steps, episodes per step, learning rate, training tasks), so the two RL stages differ only by it.

Each checkpoint plays every held-out task ``k`` times (sampling at temperature 1): pass@1 and the
unbiased pass@k with 95% intervals across tasks, success by turn (by attempt in feedback games), mean
turns, and the coverage profile Pcov(N) against the expert (``interplay.evaluation.evaluate``).
Stage-to-stage differences get paired intervals (``interplay.metrics.compare_pass_at_k``).

The output directory holds ``report.md``, ``report.json``, PNG plots, and per stage
``<name>_episodes.html`` (its evaluation episodes, ``interplay.viewer``), ``stages/<name>/``
(``result.json``, ``episodes.jsonl`` + a ``DONE`` marker) and ``checkpoints/<name>/``. A rerun skips
finished stages and resumes an interrupted training from its last saved TRL checkpoint.

Usage::

    result = run_pipeline("codebreaker", "runs/demo")      # or: interplay pipeline --preset codebreaker --out DIR
    print(result["report_md"])
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("untrained", "sft", "grpo", "grpo_explore")
DONE = "DONE"
#: Pcov(N) columns of the report table (the JSON has the whole grid).
REPORT_COVERAGE_N = ("2", "16", "256", "65536")


@dataclass(frozen=True)
class Preset:
    """Everything one pipeline run depends on. The tiny-model presets' numbers are measured on a loaded
    2-core CPU (see each preset's ``notes``); ``sft_steps * sft_batch`` fresh expert episodes are used.

    Args:
        name, description: how the preset is listed.
        env, env_kwargs: the environment (it must have an expert, for SFT and coverage).
        model: "tiny", a checkpoint directory or an HF id (``--model`` overrides it).
        max_new_tokens: per reply, everywhere (the tiny model's replies are a few characters).
        max_turns: a turn cap on top of the environment's own (None: the environment's).
        sft_steps, sft_batch, sft_lr, sft_warmup: SFT optimizer steps, episodes per step, learning rate,
            warmup steps.
        grpo_steps, grpo_batch, grpo_generations, grpo_lr: GRPO optimizer steps, episodes per step
            (= groups × generations), episodes per group, learning rate; both RL stages use them.
        exploration: ``ExplorationConfig`` fields of the ``grpo_explore`` stage (methods, weights, params).
        eval_tasks, k: held-out tasks and samples per task (pass@k up to k).
        train_eval_tasks: held-out tasks scored greedily at the end of each training stage (training log).
        save_steps: TRL checkpoint interval, which is what an interrupted training resumes from.
        bf16: train in bfloat16 (GPU presets).
        notes: where the numbers come from.
    """

    name: str
    description: str
    env: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    model: str = "tiny"
    max_new_tokens: int = 5
    max_turns: int | None = None
    sft_steps: int = 100
    sft_batch: int = 32
    sft_lr: float = 2e-3
    sft_warmup: int = 30
    grpo_steps: int = 20
    grpo_batch: int = 64
    grpo_generations: int = 8
    grpo_lr: float = 3e-4
    exploration: dict[str, Any] = field(default_factory=lambda: {"methods": ["outcome_count"]})
    eval_tasks: int = 100
    k: int = 8
    train_eval_tasks: int = 20
    save_steps: int = 50
    bf16: bool = False
    notes: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="codebreaker",
            description="CodeBreaker-v0 (3-digit code, digit-wise hints, 4 attempts), tiny model, ~3 min on 2 CPU cores",
            env="interplay/CodeBreaker-v0",
            # No system prompt or "(n attempts left)" notes: ~3x shorter sequences, and SFT learns
            # the hints in ~100 steps instead of plateauing for 300 (measured on this CPU).
            env_kwargs={"instructions": False},
            max_new_tokens=5,
            sft_steps=150, sft_batch=64, sft_lr=2e-3, sft_warmup=30,
            grpo_steps=30, grpo_batch=64, grpo_generations=8, grpo_lr=3e-4,
            exploration={"methods": ["outcome_count"], "weights": {"outcome_count": 0.1}},
            eval_tasks=200, k=8, train_eval_tasks=40, save_steps=50,
            notes="make demo: untrained 0% -> SFT 89% -> GRPO 92% pass@1 in 155 s on a 2-core CPU (100 tasks)",
        ),
        Preset(
            name="maze",
            description="Maze-v0 4x4, compact observation, tiny model, ~11 min on 2 CPU cores",
            env="interplay/Maze-v0",
            env_kwargs={"size": 4, "observation": "compact"},
            max_new_tokens=3,
            sft_steps=150, sft_batch=64, sft_lr=2e-3, sft_warmup=30,
            grpo_steps=20, grpo_batch=64, grpo_generations=8, grpo_lr=3e-4,
            exploration={"methods": ["outcome_count"], "weights": {"outcome_count": 0.1}},
            eval_tasks=100, k=8, train_eval_tasks=40, save_steps=50,
            notes="CLI defaults measured: SFT 150 steps 56% greedy in ~250 s; GRPO 20 steps (turn cap 12) 67% in ~100 s",
        ),
        Preset(
            name="tiny-test",
            description="the smallest end-to-end run (CodeBreaker, a few steps each): for the test suite",
            env="interplay/CodeBreaker-v0",
            env_kwargs={"instructions": False},
            max_new_tokens=4,
            sft_steps=3, sft_batch=8, sft_lr=2e-3, sft_warmup=0,
            grpo_steps=2, grpo_batch=8, grpo_generations=4, grpo_lr=3e-4,
            exploration={"methods": ["outcome_count"]},
            eval_tasks=6, k=4, train_eval_tasks=2, save_steps=1,
            notes="checks the machinery, not learning",
        ),
        Preset(
            name="gpu",
            description="Qwen/Qwen2.5-0.5B-Instruct on MathFeedback-v0, bf16, one GPU (not run on CPU machines)",
            env="interplay/MathFeedback-v0",
            model="Qwen/Qwen2.5-0.5B-Instruct",
            max_new_tokens=256,
            sft_steps=300, sft_batch=16, sft_lr=1e-5, sft_warmup=20,
            grpo_steps=200, grpo_batch=64, grpo_generations=8, grpo_lr=1e-6,
            exploration={"methods": ["pkpo"], "params": {"pkpo": {"k": 4}}},
            eval_tasks=500, k=16, train_eval_tasks=100, save_steps=50, bf16=True,
            notes="documented, not measured here: a downloaded HF model needs the hub (or a local copy)",
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error listing the presets otherwise."""
    if name not in PRESETS:
        listed = "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
        raise ValueError(f"unknown preset {name!r}; choose one of: {listed}.")
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------- stages
def stage_done(out: Path, stage: str) -> bool:
    return (out / "stages" / stage / DONE).exists()


def _load_stage(out: Path, stage: str) -> dict[str, Any]:
    return json.loads((out / "stages" / stage / "result.json").read_text())


def _finish_stage(out: Path, stage: str, result: dict[str, Any]) -> dict[str, Any]:
    folder = out / "stages" / stage
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    (folder / DONE).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))  # written last: the stage is complete
    return result


def _latest_checkpoint(output_dir: Path) -> str | None:
    """The last TRL checkpoint of an interrupted training, which ``train(resume_from_checkpoint=)`` takes."""
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def evaluate_checkpoint(preset: Preset, model: str, trajectories: list[Any] | None = None) -> dict[str, Any]:
    """Sampled evaluation (``k`` samples per held-out task) + coverage profile of one checkpoint, plus
    ``per_task_successes`` (for paired comparisons) and the report's summary keys. The episodes played
    are appended to ``trajectories`` when it is given."""
    from interplay.agents import HFAgent
    from interplay.evaluation import evaluate
    from interplay.rollout import Trajectory

    started = time.perf_counter()
    agent = HFAgent(model, temperature=1.0, max_new_tokens=preset.max_new_tokens, seed=0)
    played: list[Trajectory] = []
    result = evaluate(preset.env, agent, preset.eval_tasks, preset.k, env_kwargs=dict(preset.env_kwargs),
                      max_turns=preset.max_turns, coverage=True, trajectories=played)
    per_task: dict[int, list[bool]] = {}
    for t in played:
        per_task.setdefault(t.seed, []).append(bool(t.success))
    if trajectories is not None:
        trajectories.extend(played)
    return {
        "pass_at_1": result["pass_at_k"]["1"],
        "pass_at_1_ci95": result["pass_at_k_ci95"]["1"],
        "pass_at_k": result["pass_at_k"][str(preset.k)],
        "pass_at_k_ci95": result["pass_at_k_ci95"][str(preset.k)],
        "k": preset.k,
        "coverage": result["coverage"],
        "mean_turns": result["mean_turns"],
        "success_by_turn": result["success_by_turn"],
        "eval_s": time.perf_counter() - started,
        "per_task_successes": [per_task[seed] for seed in sorted(per_task)],
        "eval": result,
    }


def _sft(preset: Preset, model: str, output_dir: Path, progress: bool) -> dict[str, Any]:
    from trl import SFTConfig

    from interplay.training.config import ImitationConfig
    from interplay.training.imitation import sft_defaults, train_imitation

    config = ImitationConfig(env=preset.env, env_kwargs=dict(preset.env_kwargs), model=model,
                             episodes=preset.sft_steps * preset.sft_batch, max_turns=preset.max_turns,
                             eval_episodes=preset.train_eval_tasks, max_new_tokens=preset.max_new_tokens)
    args = SFTConfig(output_dir=str(output_dir), **sft_defaults(
        max_steps=preset.sft_steps, per_device_train_batch_size=preset.sft_batch, learning_rate=preset.sft_lr,
        warmup_steps=preset.sft_warmup, save_steps=preset.save_steps, save_total_limit=1,
        logging_steps=max(1, min(10, preset.sft_steps // 10)), disable_tqdm=not progress,
        **({"bf16": True} if preset.bf16 else {})))
    result = train_imitation(config, args, resume=_latest_checkpoint(output_dir), progress=progress)
    return {"train_s": result.seconds, "log_history": result.log_history, "heldout": result.heldout}


def _grpo(preset: Preset, model: str, output_dir: Path, progress: bool, explore: bool) -> dict[str, Any]:
    from trl import GRPOConfig

    from interplay.training.config import GRPOTrainingConfig
    from interplay.training.exploration import ExplorationConfig
    from interplay.training.grpo import grpo_defaults, train_grpo

    config = GRPOTrainingConfig(
        env=preset.env, env_kwargs=dict(preset.env_kwargs), model=model, max_turns=preset.max_turns,
        max_new_tokens=preset.max_new_tokens, eval_episodes=preset.train_eval_tasks,
        # Fresh tasks after SFT's, the same ones for both RL stages.
        seed_start=preset.sft_steps * preset.sft_batch,
        exploration=ExplorationConfig(**preset.exploration) if explore else None)
    args = GRPOConfig(output_dir=str(output_dir), **grpo_defaults(
        max_steps=preset.grpo_steps, per_device_train_batch_size=preset.grpo_batch,
        num_generations=preset.grpo_generations, learning_rate=preset.grpo_lr, save_steps=preset.save_steps,
        save_total_limit=1, disable_tqdm=not progress, **({"bf16": True} if preset.bf16 else {})))
    result = train_grpo(config, args, resume=_latest_checkpoint(output_dir))
    return {"train_s": result.seconds, "log_history": result.log_history, "heldout": result.heldout}


def run_stage(preset: Preset, stage: str, out: Path, model: str, progress: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one stage (train if it trains, then evaluate), or read its result back if it is done."""
    index = STAGES.index(stage) + 1
    if stage_done(out, stage):
        result = _load_stage(out, stage)
        log(f"[{index}/{len(STAGES)}] {stage}: done before, skipped (pass@1 {result['pass_at_1']:.3f})")
        return result
    checkpoint = out / "checkpoints" / stage
    start = {"untrained": model, "sft": model, "grpo": str(out / "checkpoints" / "sft"),
             "grpo_explore": str(out / "checkpoints" / "sft")}[stage]
    what = {"untrained": "evaluating the starting model",
            "sft": f"imitation: SFT on {preset.sft_steps * preset.sft_batch} expert episodes, {preset.sft_steps} steps",
            "grpo": f"GRPO from the SFT checkpoint, {preset.grpo_steps} steps x {preset.grpo_batch} episodes",
            "grpo_explore": f"GRPO + {'+'.join(preset.exploration.get('methods', []))} from the SFT checkpoint, "
                            f"same budget"}[stage]
    log(f"[{index}/{len(STAGES)}] {stage}: {what}")
    started = time.perf_counter()
    trained: dict[str, Any] = {"train_s": 0.0, "log_history": [], "heldout": []}
    if stage == "sft":
        trained = _sft(preset, start, checkpoint, progress)
    elif stage in ("grpo", "grpo_explore"):
        trained = _grpo(preset, start, checkpoint, progress, explore=stage == "grpo_explore")
    played: list[Any] = []
    evaluated = evaluate_checkpoint(preset, str(checkpoint) if stage != "untrained" else start, trajectories=played)
    _save_episodes(out, stage, preset, played)
    if stage != "untrained":
        for stale in checkpoint.glob("checkpoint-*"):  # the final model is saved; resume points are not needed
            shutil.rmtree(stale, ignore_errors=True)
    result = {"stage": stage, "model": start if stage == "untrained" else str(checkpoint), **evaluated, **trained,
              "wall_s": time.perf_counter() - started}
    log(f"[{index}/{len(STAGES)}] {stage}: finished in {result['wall_s']:.0f} s: pass@1 {result['pass_at_1']:.3f}, "
        f"pass@{preset.k} {result['pass_at_k']:.3f}, mean turns {result['mean_turns']:.2f}")
    return _finish_stage(out, stage, result)


def _save_episodes(out: Path, stage: str, preset: Preset, played: list[Any]) -> None:
    """A stage's evaluation episodes: ``stages/<stage>/episodes.jsonl`` and the page ``<stage>_episodes.html``."""
    from interplay.rollout import save_trajectories
    from interplay.viewer import write_html

    save_trajectories(out / "stages" / stage / "episodes.jsonl", played)
    write_html(out / f"{stage}_episodes.html", played, title=f"{stage}: evaluation episodes on {preset.env}")


# ---------------------------------------------------------------------------------------------- report
def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _with_ci(value: float, ci: list[float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return _pct(value)
    return f"{_pct(value)} [{_pct(ci[0])}, {_pct(ci[1])}]"


def comparisons(stages: dict[str, dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Paired differences (B − A, same tasks) of pass@1 and pass@k with 95% intervals across tasks."""
    from interplay.metrics import compare_pass_at_k

    rows = []
    for a, b in (("untrained", "sft"), ("sft", "grpo"), ("sft", "grpo_explore"), ("grpo", "grpo_explore")):
        if a not in stages or b not in stages:
            continue
        row: dict[str, Any] = {"a": a, "b": b}
        for kk in (1, k):
            diff = compare_pass_at_k(stages[a]["per_task_successes"], stages[b]["per_task_successes"], kk)
            row[f"pass_at_{kk}"] = {"diff": diff.mean, "ci95": [diff.low, diff.high]}
        rows.append(row)
    return rows


def render_report(env: str, preset: Preset, model: str, stages: dict[str, dict[str, Any]]) -> str:
    """``report.md``: the results table, paired comparisons, success by attempt, timings, plots."""
    k = preset.k
    first = stages[STAGES[0]]["eval"]
    lines = [
        f"# interplay pipeline report: {env}",
        "",
        f"Preset `{preset.name}` ({preset.description}); model `{model}`. Every checkpoint played the same "
        f"{first['n_tasks']} held-out tasks (seeds from {min(first['seeds'])}) {k} times each, sampling at "
        "temperature 1. Numbers are percentages; brackets are 95% intervals across tasks.",
        "",
        "## Results",
        "",
        f"| stage | pass@1 | pass@{k} | " + " | ".join(f"Pcov({n})" for n in REPORT_COVERAGE_N)
        + " | mean turns | wall s |",
        "|---|---|---|" + "---|" * len(REPORT_COVERAGE_N) + "---|---|",
    ]
    for name, s in stages.items():
        cov = " | ".join(_pct(s["coverage"].get(n)) for n in REPORT_COVERAGE_N)
        lines.append(f"| {name} | {_with_ci(s['pass_at_1'], s['pass_at_1_ci95'])} | "
                     f"{_with_ci(s['pass_at_k'], s['pass_at_k_ci95'])} | {cov} | {s['mean_turns']:.2f} | "
                     f"{s['wall_s']:.0f} |")
    lines += [
        "",
        "pass@1: chance that one sampled episode solves a task. pass@k: chance that at least one of k does "
        "(unbiased estimator). Pcov(N): share of the expert's episodes that the model finds at least N times "
        "less likely than the expert does (lower is better: the model covers the expert's behaviour).",
        "",
        "## Paired differences (same tasks)",
        "",
        f"| comparison | Δ pass@1 | Δ pass@{k} |",
        "|---|---|---|",
    ]
    for row in comparisons(stages, k):
        cells = []
        for kk in (1, k):
            d = row[f"pass_at_{kk}"]
            verdict = "" if d["ci95"][0] <= 0 <= d["ci95"][1] else " *"
            cells.append(f"{100 * d['diff']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]{verdict}")
        lines.append(f"| {row['b']} − {row['a']} | {cells[0]} | {cells[1]} |")
    lines += ["", "`*`: the interval excludes 0. Otherwise the difference is within noise at this task count.", ""]
    turns = sorted({int(t) for s in stages.values() for t in s["success_by_turn"]})
    lines += [
        "## Success by attempt",
        "",
        "Share of episodes solved within t turns (in a feedback game: within t attempts).",
        "",
        "| stage | " + " | ".join(f"t≤{t}" for t in turns) + " |",
        "|---|" + "---|" * len(turns),
    ]
    for name, s in stages.items():
        by_turn = s["success_by_turn"]
        cells = [_pct(by_turn.get(str(t), by_turn[max(by_turn, key=int)])) for t in turns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Wall time",
        "",
        "| stage | train s | eval s | total s |",
        "|---|---|---|---|",
    ]
    for name, s in stages.items():
        lines.append(f"| {name} | {s['train_s']:.0f} | {s['eval_s']:.0f} | {s['wall_s']:.0f} |")
    lines.append(f"| all | | | {sum(s['wall_s'] for s in stages.values()):.0f} |")
    lines += [
        "",
        "## Plots",
        "",
        "![pass@k](pass_at_k.png) ![coverage](coverage.png) ![success by turn](success_by_turn.png)",
        "",
        "Training curves: " + ", ".join(f"[{n}](training_{n}.png)" for n in STAGES[1:] if n in stages),
        "",
        "Evaluation episodes, one page per stage (open in a browser): "
        + ", ".join(f"[{n}]({n}_episodes.html)" for n in stages),
        "",
    ]
    return "\n".join(lines)


def write_report(out: Path, preset: Preset, model: str, stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``report.md``, ``report.json`` and the PNG plots in ``out``; returns report.json's content."""
    from interplay.plots import plot_all, plot_training_curves

    report = {"env": preset.env, "preset": preset.name, "model": model, "k": preset.k,
              "preset_config": dataclasses.asdict(preset), "stages": stages,
              "comparisons": comparisons(stages, preset.k)}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    plot_all({name: s["eval"] for name, s in stages.items()}, out)
    for name in STAGES[1:]:
        history = [e for e in stages[name]["log_history"] if "step" in e]
        if history:
            plot_training_curves(history, out / f"training_{name}.png")
    (out / "report.md").write_text(render_report(preset.env, preset, model, stages))
    return report


def _check_out_dir(out: Path, preset: Preset, model: str) -> None:
    """A rerun must be the same run: refuse to mix stages of different presets/models in one directory."""
    manifest = out / "pipeline.json"
    wanted = {"preset": dataclasses.asdict(preset), "model": model}
    if manifest.exists():
        found = json.loads(manifest.read_text())
        if found != json.loads(json.dumps(wanted)):
            raise ValueError(f"{out} holds a pipeline run of preset {found['preset']['name']!r} with model "
                             f"{found['model']!r}, not {preset.name!r} with {model!r}: pass another --out, or "
                             "delete the directory to start over.")
        return
    out.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(wanted, indent=1))


def run_pipeline(preset: str | Preset, out: str | Path, model: str | None = None, progress: bool = True,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every stage of ``preset`` into ``out`` and write the report there.

    Returns report.json's content plus ``report_md`` (the path of report.md) and ``wall_s`` (this call).
    """
    started = time.perf_counter()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    model = model or preset.model
    out = Path(out)
    _check_out_dir(out, preset, model)
    log(f"interplay pipeline: preset {preset.name!r} on {preset.env} with model {model!r} -> {out}")
    stages = {stage: run_stage(preset, stage, out, model, progress=progress, log=log) for stage in STAGES}
    report = write_report(out, preset, model, stages)
    return {**report, "report_md": str(out / "report.md"), "wall_s": time.perf_counter() - started}


__all__ = ["PRESETS", "STAGES", "Preset", "evaluate_checkpoint", "get_preset", "render_report", "run_pipeline",
           "run_stage", "write_report"]
