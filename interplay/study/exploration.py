"""Exploration where the start is diverse: GRPO against each exploration method at equal sampled episodes.

The regime each method's paper used: a diverse starting policy (an early SFT checkpoint, sampled at
temperature 1, that solves some held-out codes in some samples and not others), a fixed set of training
tasks revisited many times (the historical count bonus counts outcomes per task across visits), a small
outcome space for the count bonuses (CodeBreaker's ``outcome="hints"``: the last guess's hint pattern, 27
values, not the guess's 1,000), and pass@k to 64 on held-out codes.

From one SFT checkpoint per seed, GRPO runs with the same steps, episodes per step, groups, learning rate,
training tasks and seed, differing only by the reward shaping (``interplay.training.exploration``), each at
the settings its paper recommends (the library's defaults): the historical outcome-count bonus and the
batch-diversity penalty (Song, Kempe & Munos 2025), the representation-based elliptical bonus on a frozen
copy of the starting model (Tuyls et al. 2025) and pass@k rewards (PKPO, Walder & Karkhanis 2025). Each
method is compared with the GRPO arm that scales rewards as it does: PKPO keeps its rewards' scale
(``scale_rewards="none"``), so its control is GRPO without the division by the group's standard deviation;
the others' is plain GRPO. Every model plays each held-out task 64 times at temperature 1: the unbiased
pass@k for k = 1 to 64, and the share of tasks never solved.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interplay.experiments import GRPO_CHECKS_NOTE, mean_checks, pct, with_interval
from interplay.metrics import per_task_pass_at_k
from interplay.study.core import (
    Lab,
    Section,
    claim,
    over,
    play,
    two_way_interval,
)
from interplay.training.config import GRPOTrainingConfig, ImitationConfig
from interplay.training.exploration import ExplorationConfig

ENV = "interplay/CodeBreaker-v0"
ENV_KWARGS = {"instructions": False, "max_attempts": 4, "outcome": "hints"}
MAX_NEW_TOKENS = 5
K = (1, 4, 16, 64)  # pass@k columns; the smallest budget plays 8 samples and stops at pass@4 (its K_SMALLEST)
K_SMALLEST = (1, 4)
#: SFT_STEPS: the start, an early checkpoint, diverse because it has not yet collapsed onto the expert's
#: deterministic guesses (chosen so that its pass@64 on held-out codes lies between 20% and 60%, measured
#: once with seed 0 before the arms were run; the section reports what each seed's start reached);
#: TRAIN_TASKS: a fixed set, so GRPO_STEPS * BATCH / GROUP groups visit each task ~15 times.
SFT_STEPS, GRPO_STEPS, BATCH, GROUP, TRAIN_TASKS, EVAL_TASKS = 80, 30, 64, 8, 16, 200
#: The arms: the two GRPO controls and one per exploration method.
ARMS = ("grpo", "grpo_unscaled", "outcome_count", "batch_diversity", "repexp", "pkpo")
#: Each method's control: the GRPO arm with the same reward scaling.
CONTROL = {"outcome_count": "grpo", "batch_diversity": "grpo", "repexp": "grpo", "pkpo": "grpo_unscaled"}


def shaping(arm: str, steps: int) -> ExplorationConfig | None:
    """What ``arm`` adds to plain GRPO: the method with the library's defaults (which follow the papers),
    except PKPO's schedule: pass@4 rewards for the first 3/4 of the steps, then k = 1, as the paper anneals."""
    if arm in ("grpo", "grpo_unscaled"):
        return None
    if arm == "pkpo":
        return ExplorationConfig(methods=["pkpo"], params={"pkpo": {"k": 4, "k_end": 1,
                                                                    "anneal_steps": max(1, 3 * steps // 4)}})
    return ExplorationConfig(methods=[arm])


#: What an arm changes in TRL's GRPOConfig: PKPO's rewards are its advantages up to the group mean; TRL's
#: default division by the group's standard deviation would erase their magnitudes. Its control does the same.
GRPO_ARGS: dict[str, dict[str, Any]] = {"pkpo": {"scale_rewards": "none"}, "grpo_unscaled": {"scale_rewards": "none"}}


def _arm(lab: Lab, seed: int, name: str, start: Any, steps: int, seed_start: int) -> dict[str, Any]:
    config = GRPOTrainingConfig(env=ENV, env_kwargs=dict(ENV_KWARGS), model=str(start), max_new_tokens=MAX_NEW_TOKENS,
                                eval_episodes=1, seed_start=seed_start, tasks=lab.budget.tasks(TRAIN_TASKS),
                                exploration=shaping(name, steps))
    path = lab.grpo(f"seed{seed}/{name}", config, steps, seed=seed, batch=lab.budget.batch(BATCH), group=GROUP,
                    **GRPO_ARGS.get(name, {}))
    log = [e for e in lab.train_log(f"seed{seed}/{name}") if "frac_reward_zero_std" in e]
    return {"path": path, "zero_std": float(np.mean([e["frac_reward_zero_std"] for e in log])),
            "train_success": float(np.mean([e["episode/success_rate"] for e in log])),
            "checks": lab.grpo_checks(f"seed{seed}/{name}")}


def _ks(lab: Lab) -> tuple[int, ...]:
    return K_SMALLEST if lab.budget.smallest else K


def _scores(lab: Lab, name: str, path: Any, tasks: int, seed: int) -> np.ndarray:
    """Per-task pass@k for every k of ``_ks``, ``[len(ks), tasks]`` (samples: twice the largest k below 64)."""
    ks = _ks(lab)
    samples = ks[-1] if ks[-1] >= 64 else 2 * ks[-1]
    played = lab.cached(f"{name}/samples", lambda: play(path, ENV, ENV_KWARGS, tasks, samples, seed=seed,
                                                        max_new_tokens=MAX_NEW_TOKENS))
    return np.array([per_task_pass_at_k(played["successes"], k) for k in ks])


def _table(scores: dict[str, np.ndarray], train: dict[str, list[dict[str, Any]]], seeds: int,
           ks: tuple[int, ...]) -> list[str]:
    head = " | ".join(f"pass@{k}" for k in ks)
    lines = [f"| model | {head} | tasks never solved (pass@{ks[-1]} = 0) | pass@1 − control | pass@{ks[-1]} − control "
             "| groups all-equal in training | training success |", "|---|" + "---|" * (len(ks) + 5)]
    for name, s in scores.items():  # s: [seeds, len(ks), tasks]
        cells = " | ".join(pct(s[:, i].mean()) for i in range(len(ks)))
        never = pct(float((s[:, -1] == 0).mean()))
        control = CONTROL.get(name)
        diffs = ["–", "–"] if control is None else [
            with_interval(*two_way_interval(s[:, i] - scores[control][:, i])) for i in (0, -1)]
        runs = train.get(name)
        zero = pct(np.mean([r["zero_std"] for r in runs])) if runs else "–"
        success = pct(np.mean([r["train_success"] for r in runs])) if runs else "–"
        label = f"{name} (vs {control})" if control else name
        lines.append(f"| {label} | {cells} | {never} | {diffs[0]} | {diffs[1]} | {zero} | {success} |")
    return lines + ["", f"Percentages, means over {seeds} seed(s); differences in points against the method's control "
                        f"(the GRPO arm with its reward scaling), with 95% intervals over {over(seeds)}, paired by seed "
                        "and task."]


def run(lab: Lab) -> Section:
    budget = lab.budget
    sft_steps, steps, tasks, seeds = budget.steps(SFT_STEPS, least=4), budget.steps(GRPO_STEPS), budget.tasks(EVAL_TASKS), budget.seeds
    span = sft_steps * BATCH + budget.tasks(TRAIN_TASKS)
    per_seed: dict[str, list[np.ndarray]] = {"sft": [], **{name: [] for name in ARMS}}
    train: dict[str, list[dict[str, Any]]] = {name: [] for name in ARMS}
    for seed in range(seeds):
        config = ImitationConfig(env=ENV, env_kwargs=dict(ENV_KWARGS), max_new_tokens=MAX_NEW_TOKENS,
                                 episodes=sft_steps * BATCH, eval_episodes=1, seed_start=seed * span)
        sft = lab.sft(f"seed{seed}/sft", config, sft_steps, seed=seed)
        per_seed["sft"].append(_scores(lab, f"seed{seed}/sft", sft, tasks, seed))
        for name in ARMS:
            arm = _arm(lab, seed, name, sft, steps, seed * span + sft_steps * BATCH)
            train[name].append(arm)
            per_seed[name].append(_scores(lab, f"seed{seed}/{name}", arm["path"], tasks, seed))
    scores = {name: np.stack(runs) for name, runs in per_seed.items()}
    within, ks = over(seeds), _ks(lab)
    top = f"pass@{ks[-1]}"

    def gain(name: str, k_index: int) -> tuple[float, float, float]:
        return two_way_interval(scores[name][:, k_index] - scores[CONTROL[name]][:, k_index])

    claims = []
    for name in CONTROL:
        for k_index, label in ((-1, top), (0, "pass@1")):
            value, low, high = gain(name, k_index)
            control = "plain GRPO" if CONTROL[name] == "grpo" else "GRPO with the same reward scaling"
            claims.append(claim(f"{name}_{label.replace('@', '')}", f"{name} raises {label} over {control} at "
                                f"equal sampled episodes.", f"{label}({name}) − {label}({CONTROL[name]})", value,
                                (low, high), within, margin=0.02))
    value, low, high = two_way_interval(scores["sft"][:, -1] - scores["grpo"][:, -1])
    claims.append(claim("rl_narrows", f"Plain GRPO lowers {top} below its SFT start (RL sharpens, does not widen).",
                        f"{top}(SFT) − {top}(GRPO)", value, (low, high), within, margin=0.02))
    start_zero = float((scores["sft"][:, -1] == 0).mean())
    samples = ks[-1] if ks[-1] >= 64 else 2 * ks[-1]
    visits = steps * budget.batch(BATCH) / GROUP / budget.tasks(TRAIN_TASKS)
    setup = [f"`{ENV}` with `{ENV_KWARGS}`, the tiny model; {seeds} seed(s), each: SFT {sft_steps} steps × {BATCH} "
             f"expert episodes (lr 2e-3), an early checkpoint, then from it one GRPO run per arm: {steps} steps × "
             f"{budget.batch(BATCH)} episodes in groups of {GROUP} (lr 3e-4) on a fixed set of "
             f"{budget.tasks(TRAIN_TASKS)} training tasks, each visited about {visits:.0f} times",
             f"arms: plain GRPO; GRPO with `scale_rewards=\"none\"` (PKPO's control); {', '.join(CONTROL)} at the "
             f"library's defaults, which follow each paper (`interplay.training.exploration`: count bonuses on the "
             f"hint-pattern outcome, RepExp on a frozen copy of the start with a fresh sparse projection per group), "
             f"PKPO with k = 4 for {max(1, 3 * steps // 4)} steps, then k = 1",
             f"evaluation: {tasks} held-out tasks × {samples} samples at temperature 1 per model; the SFT start has "
             f"{top} = 0 on {pct(start_zero)}% of them"]
    figures = {name: {f"pass@{k}": float(s[:, i].mean()) for i, k in enumerate(ks)} for name, s in scores.items()}
    checks = {name: mean_checks([r["checks"] for r in runs]) for name, runs in train.items()}
    return Section("exploration", "Exploration from a diverse start",
                   "From a diverse start, does an exploration method reach more tasks (pass@k at large k) or solve "
                   "more at once (pass@1) than GRPO with the same reward scaling and the same sampled episodes?", setup, _table(scores, train, seeds, ks),
                   claims, figures, checks=checks, checks_note=GRPO_CHECKS_NOTE)
