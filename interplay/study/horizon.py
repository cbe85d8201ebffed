"""Horizon of imitation: does behaviour cloning fail more as episodes get longer, as compounding errors predict?

Maze-v0 (compact observation, the tiny model) at growing sizes: the side is the horizon knob, the expert's
episodes lengthen with it. At every size SFT gets the same data budget (the same optimizer steps of the same
batch, each expert episode seen once), then plays the held-out mazes greedily:

- success: share of held-out mazes solved within the environment's own per-task turn limit;
- per-step error ``e``: teacher-forced on the expert's own episodes of the same mazes, the share of expert
  turns where the model's most likely move is not the expert's (``core.expert_forcing``), pooled over all
  expert turns: ``e = Σ errors / Σ expert turns``. Measured on the expert's states, so a failed episode's
  repeated bumps do not count;
- predicted success under compounding: ``mean over tasks of (1 − e)^H_task``, ``H_task`` the expert's number of
  turns on that task: every error fatal and errors independent at the on-expert rate. Behaviour cloning's
  cost grows like T²ε because one error puts the learner on states the expert never showed (Ross & Bagnell
  2010, "Efficient Reductions for Imitation Learning"); DAgger (Ross, Gordon & Bagnell 2011, "A Reduction of
  Imitation Learning and Structured Prediction to No-Regret Online Learning") labels the learner's own
  states and gets Tε, compared here at equal optimizer steps; a privileged expert (BFS on the full map)
  can be harder to imitate than one acting on the learner's observations (the explorer): the imitation gap
  (Weihs et al. 2021, "Bridging the Imitation Gap by Adaptive Insubordination"; Swamy et al. 2022, "Sequence
  Model Imitation Learning with Unobserved Contexts").

Intervals: percentile bootstrap over the held-out tasks (and the seeds, where there are several); the same
tasks at every arm, so differences are paired by task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interplay.experiments import pct, pct_interval, signed, with_interval
from interplay.study.core import (
    Budget,
    Claim,
    Lab,
    Section,
    claim,
    expert_forcing,
    over,
    play,
    two_way_interval,
)
from interplay.training.config import ImitationConfig

ENV = "interplay/Maze-v0"
MAX_NEW_TOKENS = 3
SFT_STEPS, BATCH, LR = 150, 64, 2e-3  # enough steps for SFT to solve some 4x4 mazes (benchmarks/RESULTS.md)
#: DAgger: the library's rounds and steps per round, inside the same 150 steps; 256 learner episodes per round
#: (the library's default is 512) label ~3,700 states, more than the 1,280 rows a round's 20 steps draw.
DAGGER_ROUNDS, DAGGER_STEPS, DAGGER_EPISODES = 2, 20, 256
PAIRED_SIZE = 4  # DAgger and the explorer beside SFT on the BFS expert (3 at the smallest budget)
TOLERANCE = 0.10  # claim 2: the prediction counts as right within 10 points of success


def _env(size: int, expert: str = "bfs") -> dict[str, Any]:
    return {"size": size, "observation": "compact", "expert": expert}


# --------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Plan:
    """What runs at a budget. The size sweep (the first two claims) trains ``Budget.seeds`` seeds (3 at budget 1);
    the paired arms at ``paired`` (DAgger, the explorer expert, and SFT on the BFS expert beside them)
    ``paired_seeds``. CPU budgets (<= 2) sweep 3x3 and 5x5 only (the main claim's ends) with all seeds, and run
    the paired arms at 4x4 with one seed, so that the section takes about as long as the others beside it on a
    second worker. GPU budgets (> 2): every size and the explorer at every size, all with every seed."""

    seeds: int
    sizes: tuple[int, ...]
    paired: int  # the size of the DAgger and explorer arms
    paired_seeds: int
    explorer_sizes: tuple[int, ...]
    steps: int
    batch: int
    tasks: int
    per_round: int  # DAgger: optimizer steps after each round
    dagger_episodes: int

    @classmethod
    def at(cls, budget: Budget) -> Plan:
        cpu = budget.scale <= 2
        sizes = (3, 4) if budget.smallest else (3, 5) if cpu else (3, 4, 5)
        steps = budget.steps(SFT_STEPS, least=3)
        paired = sizes[0] if budget.smallest else PAIRED_SIZE
        return cls(budget.seeds, sizes, paired, 1 if cpu else budget.seeds, (paired,) if cpu else sizes, steps,
                   budget.batch(BATCH), budget.tasks(100), budget.steps(DAGGER_STEPS, least=1),
                   budget.tasks(DAGGER_EPISODES))

    def jobs(self) -> dict[str, tuple[str, int, str, int]]:
        """Every arm: ``{key: (method, size, expert, seeds)}``; the SFT-on-BFS arm at a size the sweep and the
        paired arms share trains the larger number of seeds."""
        out = {f"sft_bfs_{m}": ("sft", m, "bfs", self.seeds) for m in self.sizes}
        for m in {self.paired, *self.explorer_sizes}:
            seeds = max(self.paired_seeds, self.seeds if m in self.sizes else 0)
            out[f"sft_bfs_{m}"] = ("sft", m, "bfs", seeds)
        out[f"dagger_bfs_{self.paired}"] = ("dagger", self.paired, "bfs", self.paired_seeds)
        out.update({f"sft_explorer_{m}": ("sft", m, "explorer", self.paired_seeds) for m in self.explorer_sizes})
        return out

    @property
    def all_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({*self.sizes, self.paired, *self.explorer_sizes}))

    @property
    def offline(self) -> int:
        """DAgger's offline SFT steps: the SFT budget less the rounds' steps."""
        return self.steps - DAGGER_ROUNDS * self.per_round

    @property
    def span(self) -> int:
        """Training seeds one run seed uses (its block; blocks of different run seeds are disjoint)."""
        return self.steps * self.batch + DAGGER_ROUNDS * self.dagger_episodes


# ------------------------------------------------------------------------------------ training, measuring
def _name(seed: int, method: str, size: int, expert: str) -> str:
    return f"seed{seed}/{method}_{expert}_{size}x{size}"


def _train(lab: Lab, plan: Plan, seed: int, method: str, size: int, expert: str) -> Path:
    """SFT (``method="sft"``) or DAgger on ``plan.steps`` optimizer steps in all, seed ``seed``'s block."""
    common = {"env": ENV, "env_kwargs": _env(size, expert), "max_new_tokens": MAX_NEW_TOKENS, "eval_episodes": 1,
              "seed_start": seed * plan.span}
    if method == "sft":
        config, steps = ImitationConfig(episodes=plan.steps * plan.batch, **common), plan.steps
    else:
        config = ImitationConfig(episodes=plan.offline * plan.batch, mode="dagger", dagger_rounds=DAGGER_ROUNDS,
                                 dagger_episodes=plan.dagger_episodes, dagger_steps=plan.per_round, **common)
        steps = plan.offline
    return lab.sft(_name(seed, method, size, expert), config, steps, seed=seed, batch=plan.batch, lr=LR)


def _measure(lab: Lab, plan: Plan, seed: int, method: str, size: int, expert: str) -> np.ndarray:
    """Per held-out task ``[success, step errors, expert turns]`` of one trained model: ``[tasks, 3]``."""
    model, kwargs, name = _train(lab, plan, seed, method, size, expert), _env(size, expert), _name(seed, method, size, expert)
    played = lab.cached(f"{name}/play", lambda: play(model, ENV, kwargs, plan.tasks, max_new_tokens=MAX_NEW_TOKENS,
                                                     temperature=0.0))
    forced = lab.cached(f"{name}/forcing", lambda: expert_forcing(model, ENV, kwargs, plan.tasks))
    return np.array([[s[0], sum(e), h] for s, e, h in zip(played["successes"], forced["step_errors"],
                                                          forced["expert_turns"])], dtype=np.float64)


def _expert(lab: Lab, size: int, expert: str, tasks: int) -> dict[str, float]:
    """The expert's own success and mean episode length on the held-out mazes."""
    def compute() -> dict[str, list[int]]:
        from interplay.agents.base import ExpertAgent
        from interplay.rollout import EnvSpec, rollout
        from interplay.seeds import eval_seeds

        played = sorted(rollout(EnvSpec(ENV, _env(size, expert)), ExpertAgent(), seeds=eval_seeds(tasks)),
                        key=lambda t: t.seed)
        return {"success": [int(t.success) for t in played], "turns": [t.turns for t in played]}

    runs = lab.cached(f"expert_{expert}_{size}x{size}", compute)
    return {"success": float(np.mean(runs["success"])), "turns": float(np.mean(runs["turns"]))}


# ------------------------------------------------------------------------------ statistics of [.., tasks, 3]
def success(x: np.ndarray) -> float:
    return float(x[..., 0].mean())


def step_error(x: np.ndarray) -> float:
    return float(x[..., 1].sum() / max(1.0, x[..., 2].sum()))


def predicted(x: np.ndarray) -> float:
    """Success if every per-step error were fatal: mean over tasks of (1 − e)^H_task."""
    return float(((1.0 - step_error(x)) ** x[..., 2]).mean())


def gap(x: np.ndarray) -> float:
    return success(x) - predicted(x)


def fit(x: np.ndarray) -> float:
    """Claim 2 on ``[seeds, tasks, sizes, 3]``: TOLERANCE − the mean over sizes of |observed − predicted|."""
    return TOLERANCE - float(np.mean([abs(gap(x[:, :, k])) for k in range(x.shape[2])]))


def _cell(x: np.ndarray, statistic: Callable[[np.ndarray], float]) -> str:
    return pct_interval(*two_way_interval(x, statistic))


# ---------------------------------------------------------------------------------------------- report
def _row(label: str, x: np.ndarray, expert: dict[str, float]) -> str:
    value, low, high = two_way_interval(x, gap)
    return (f"| {label} | {expert['turns']:.1f} | {pct(expert['success'])} | {_cell(x, success)} | "
            f"{_cell(x, step_error)} | {_cell(x, predicted)} | {with_interval(value, low, high)} |")


def _tables(plan: Plan, arms: dict[str, np.ndarray], experts: dict[str, dict[str, float]]) -> list[str]:
    head = ["| {} | expert turns H | expert success | success (greedy) | per-step error e | predicted mean (1−e)^H | "
            "observed − predicted (points) |", "|---|---|---|---|---|---|---|"]
    lines = [f"SFT on the BFS expert, {plan.steps} steps × {plan.batch} episodes at every size "
             f"(% [95% interval over {over(plan.seeds)}]):", "", head[0].format("maze"), head[1]]
    lines += [_row(f"{n}x{n}", arms[f"sft_bfs_{n}"][:plan.seeds], experts[f"bfs_{n}"]) for n in plan.sizes]
    n = plan.paired
    lines += ["", f"At {n}x{n}, the same {plan.steps} optimizer steps: DAgger beside SFT, the observation-only expert "
              "beside the privileged one (per-step error and H on each arm's own expert's episodes; % [95% interval "
              f"over {over(plan.paired_seeds)}]):", "",
              head[0].format("arm"), head[1], _row("SFT, BFS expert", _paired(plan, arms, f"sft_bfs_{n}"),
                                                   experts[f"bfs_{n}"]),
              _row(f"DAgger, BFS expert ({plan.offline} + {DAGGER_ROUNDS}×{plan.per_round} steps)",
                   arms[f"dagger_bfs_{n}"], experts[f"bfs_{n}"])]
    lines += [_row(f"SFT, explorer expert, {m}x{m}", arms[f"sft_explorer_{m}"], experts[f"explorer_{m}"])
              for m in plan.explorer_sizes]
    return lines


def _paired(plan: Plan, arms: dict[str, np.ndarray], key: str) -> np.ndarray:
    """An arm's first ``plan.paired_seeds`` seeds: the ones the paired arms have beside it."""
    return arms[key][:plan.paired_seeds]


def _figures(plan: Plan, arms: dict[str, np.ndarray], experts: dict[str, dict[str, float]]) -> dict[str, Any]:
    def numbers(x: np.ndarray) -> dict[str, float]:
        return {"success": success(x), "step_error": step_error(x), "predicted": predicted(x),
                "expert_turns": float(x[..., 2].mean())}

    return {"sizes": list(plan.sizes), "steps": plan.steps, "batch": plan.batch, "tasks": plan.tasks,
            "seeds": plan.seeds, "paired_seeds": plan.paired_seeds, "arms": {k: numbers(x) for k, x in arms.items()}, "experts": experts}


# ------------------------------------------------------------------------------------------------- claims
def _claims(plan: Plan, arms: dict[str, np.ndarray], experts: dict[str, dict[str, float]]) -> list[Claim]:
    within, small, large, n = over(plan.seeds), plan.sizes[0], plan.sizes[-1], plan.paired
    paired = over(plan.paired_seeds)
    bfs = [arms[f"sft_bfs_{m}"][:plan.seeds] for m in plan.sizes]
    fall = two_way_interval(bfs[0][..., 0] - bfs[-1][..., 0])
    fits = two_way_interval(np.stack(bfs, axis=2), fit)
    if not any(x[..., 0].any() for x in bfs):  # no success anywhere: a prediction of 0 matches trivially
        fits = (fits[0], float("nan"), float("nan"))
    dagger = two_way_interval(arms[f"dagger_bfs_{n}"][..., 0] - _paired(plan, arms, f"sft_bfs_{n}")[..., 0])
    explorer = two_way_interval(np.stack([arms[f"sft_explorer_{m}"][..., 0] - _paired(plan, arms, f"sft_bfs_{m}")[..., 0]
                                          for m in plan.explorer_sizes], axis=2))
    gaps = ", ".join(f"{m}x{m} {signed(gap(x))}" for m, x in zip(plan.sizes, bfs))
    own = "; ".join(f"{e}: success {pct(experts[f'{e}_{m}']['success'])}%, {experts[f'{e}_{m}']['turns']:.1f} turns "
                    f"at {m}x{m}" for e in ("bfs", "explorer") for m in plan.explorer_sizes)
    return [
        claim("success_falls_with_horizon", "Imitation's success falls as the horizon (maze size) grows, at a fixed "
              "data budget.", f"success({small}x{small}) − success({large}x{large})", fall[0], fall[1:], within,
              margin=0.1, note=f"successes by size: {', '.join(f'{m}x{m} {pct(success(x))}%' for m, x in zip(plan.sizes, bfs))}; "
              "a fall of 10 points is the smallest that counts"),
        claim("compounding_predicts_success", f"Per-step error compounded over the expert's horizon, mean (1 − e)^H, "
              f"predicts success within {100 * TOLERANCE:.0f} points.",
              f"{TOLERANCE:.2f} − mean over sizes of abs(observed − predicted success)", fits[0], fits[1:], within,
              note=f"observed − predicted, points: {gaps}. The prediction takes every error as fatal and errors as "
              "independent at the on-expert rate: recovery within the turn limit lifts the observed success above "
              "it, states off the expert's path (where errors are likelier) pull it below; reproduced when the "
              f"whole interval of the mean absolute gap is below {100 * TOLERANCE:.0f} points, not reproduced when "
              "it is wholly above"),
        claim("dagger_beats_sft", f"DAgger beats SFT at equal optimizer steps ({n}x{n}).",
              "success(DAgger) − success(SFT), paired by task", dagger[0], dagger[1:], paired, margin=0.05,
              note=f"DAgger: {plan.offline} offline steps on {plan.offline * plan.batch} expert episodes, then "
              f"{DAGGER_ROUNDS} rounds of {plan.dagger_episodes} learner episodes (temperature 1) labelled by the "
              f"BFS expert, {plan.per_round} steps each on the aggregated data; SFT: {plan.steps} steps on "
              f"{plan.steps * plan.batch} expert episodes. Per-step error on the expert's states: DAgger "
              f"{pct(step_error(arms[f'dagger_bfs_{n}']))}%, SFT {pct(step_error(_paired(plan, arms, f'sft_bfs_{n}')))}% (DAgger "
              "trains on the learner's states, not the expert's). A 5-point gain is the smallest that counts"),
        claim("observation_only_expert_easier", "The observation-only expert (explorer) is easier to imitate than "
              "the privileged one (BFS on the full map).", "success(explorer-trained) − success(BFS-trained), "
              "paired by task", explorer[0], explorer[1:], paired, margin=0.05,
              note=f"the experts' own play on the held-out mazes: {own}; a 5-point gain is the smallest that counts"),
    ]


# ---------------------------------------------------------------------------------------------- section
def _setup(plan: Plan, experts: dict[str, dict[str, float]]) -> list[str]:
    own = ", ".join(f"{m}x{m} {pct(experts[f'bfs_{m}']['success'])}% in {experts[f'bfs_{m}']['turns']:.1f} turns / "
                    f"{pct(experts[f'explorer_{m}']['success'])}% in {experts[f'explorer_{m}']['turns']:.1f}"
                    for m in plan.all_sizes)
    seeds = (f"{plural(plan.seeds, 'training seed')} for the size sweep, each with its TRL seed and a disjoint block "
             f"of {plan.span} training mazes (seed s: mazes from {plan.span}·s)")
    seeds += ("" if plan.paired_seeds == plan.seeds else
              f"; {plural(plan.paired_seeds, 'seed')} for the arms at {plan.paired}x{plan.paired} (a CPU budget: "
              "DAgger and the explorer expert on every seed would not fit, so their intervals are over "
              f"{over(plan.paired_seeds)})")
    return [
        f"`{ENV}`, compact observation, the tiny model replying in at most {MAX_NEW_TOKENS} tokens; the "
        "environment's own per-task turn limit (max(3 × shortest path, explorer length + shortest path))",
        f"SFT at every size ({', '.join(f'{m}x{m}' for m in plan.all_sizes)}): {plan.steps} optimizer steps × "
        f"{plan.batch} expert episodes (each seen once), lr {LR:g}, warmup {min(30, plan.steps // 5)} steps",
        f"DAgger at {plan.paired}x{plan.paired} with the same {plan.steps} steps: {plan.offline} offline + "
        f"{DAGGER_ROUNDS} rounds × ({plan.dagger_episodes} learner episodes at temperature 1, labelled by the BFS "
        f"expert; {plan.per_round} steps on the aggregated data)",
        f"explorer expert (`expert=\"explorer\"`) at {', '.join(f'{m}x{m}' for m in plan.explorer_sizes)}, same "
        "training mazes and steps as BFS",
        f"{plan.tasks} held-out mazes per size, greedy, one play each; per-step error teacher-forced on the "
        f"expert's episodes of the same mazes; {seeds}",
        f"the experts' own play on the held-out mazes (BFS / explorer success, mean turns): {own}",
    ]


def run(lab: Lab) -> Section:
    plan = Plan.at(lab.budget)
    jobs = plan.jobs()
    arms = {key: np.stack([_measure(lab, plan, seed, method, m, expert) for seed in range(seeds)])
            for key, (method, m, expert, seeds) in jobs.items()}
    experts = {f"{e}_{m}": _expert(lab, m, e, plan.tasks) for e in ("bfs", "explorer") for m in plan.all_sizes}
    return Section("horizon", "Horizon of imitation",
                   "Does imitation fail more as the horizon grows, as compounding per-step errors predict; does "
                   "DAgger help at equal steps; is an observation-only expert easier to imitate than a privileged one?",
                   _setup(plan, experts), _tables(plan, arms, experts), _claims(plan, arms, experts),
                   _figures(plan, arms, experts), checks=_checks(lab, plan, experts), checks_note=CHECKS_NOTE)


CHECKS_NOTE = ("No GRPO here: the manipulation is the horizon itself, the expert's turns H on the held-out mazes of "
               "each arm's size and expert, beside each arm's final training loss (SFT's cross-entropy on its last "
               "logged steps, mean over seeds) and its number of training runs.")


def _checks(lab: Lab, plan: Plan, experts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per arm: the expert's horizon H, the final training loss (mean over seeds) and the runs."""
    out = {}
    for method, m, expert, seeds in plan.jobs().values():
        losses = [[e["loss"] for e in lab.train_log(_name(seed, method, m, expert)) if "loss" in e]
                  for seed in range(seeds)]
        out[f"{'SFT' if method == 'sft' else 'DAgger'}, {expert} expert, {m}x{m}"] = {
            "expert_turns": experts[f"{expert}_{m}"]["turns"],
            "final_loss": float(np.mean([x[-1] for x in losses if x])) if any(losses) else float("nan"),
            "runs": float(seeds)}
    return out


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
