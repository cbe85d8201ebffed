"""Coverage predicts what RL can reach: SFT checkpoints of two datasets, before and after the same GRPO.

Chen, Huang, Golowich, Malladi, Block, Ash, Krishnamurthy & Foster 2025, "The Coverage Principle: How
Pre-training Enables Post-training" (arXiv 2510.15020): a model's coverage of good behaviour, not its
cross-entropy, is what best-of-N and RL can exploit; coverage at N/2 predicts pass@N, and can degrade
while the loss still improves. The good behaviour μ, the one reference of every measure here, is the expert of
CodeBreaker (3 digits, 4 attempts): it bisects each digit's remaining range and solves every code, deterministically
(log μ = 0). Two SFT datasets of the same size, both the expert's episodes (several seeds each): a fresh training
task every episode, and the episodes cycling over 32 training tasks, a narrower dataset. For every checkpoint saved
along either training:

- held-out cross-entropy: −Σ log π(expert reply tokens) / their number, on μ's episodes of the held-out tasks
  (teacher-forced);
- the coverage profile ``Pcov(M) = P_{y~μ}[log μ(y|x) − log π(y|x) > log M]`` on the same episodes
  (smaller is better; ``interplay.metrics.coverage_profile``);
- pass@N (unbiased, from N samples per task at temperature 1) before RL;
- pass@1 after the same GRPO budget from that checkpoint, and the RL gain (pass@1 after − before).

Why two datasets: along one training on fresh tasks, coverage and loss order the checkpoints almost alike
(the previous study: 5 of 153 pairs ordered differently), so nothing tells them apart. Trained on few tasks, the
tiny model generalizes only in part and is confidently wrong on some held-out codes, which the mean loss weighs by
how wrong and coverage counts once: there the two can disagree. 32 tasks was chosen by a pilot that counted
disagreeing checkpoint pairs before any claim was computed (64 tasks generalized as fresh tasks do; 16 and 8 were
hardly learned, so their checkpoints tie on coverage).

Spearman rank correlations over the checkpoints: of −Pcov(N/2) and of −cross-entropy with pass@N and with
the RL gain. The first claim compares them where they disagree (``core.ranking_edge``): over the pairs of
checkpoints the two order differently, how much more often coverage orders them as pass@N does. Checkpoint
selection (per seed, over both datasets' checkpoints): the checkpoint with the least Pcov(N/2) (ties, common once
the model covers the expert: the least 90% quantile of log μ − log π, the profile's tail) against the one with the
least cross-entropy, compared by pass@1 after RL. Intervals: percentile bootstrap resampling the seeds and the
held-out tasks together.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from interplay.experiments import GRPO_CHECKS_NOTE, mean_checks, pct
from interplay.metrics import per_task_pass_at_k
from interplay.study.core import (
    BOOTSTRAP_DRAWS,
    Lab,
    Section,
    claim,
    expert_forcing,
    over,
    play,
    ranking_edge,
    spearman,
)
from interplay.training.config import GRPOTrainingConfig, ImitationConfig

ENV = "interplay/CodeBreaker-v0"
ENV_KWARGS = {"instructions": False}  # 3 digits, 4 attempts: the expert solves every code
MAX_NEW_TOKENS = 5
N = 16  # pass@N; coverage is read at N/2
SFT_STEPS, GRPO_STEPS, BATCH = 150, 10, 64
#: The SFT datasets (label: distinct training tasks): the expert on a fresh task every episode, and the same
#: number of expert episodes cycling over 32 tasks, a narrower dataset the tiny model only partly generalizes from.
DATASETS = {"fresh tasks": None, "32 tasks": 32}


def _checkpoints(lab: Lab, seed: int, sft_steps: int, block: int, tasks: int | None) -> list[tuple[int, Any]]:
    """Train one SFT seed on one dataset, saving 3 checkpoints over its second half (before it the tiny model
    almost never finds a code: measured pass@1 0.0-2.1% at steps 45-75 of 150); 1 at the smallest budget."""
    config = ImitationConfig(env=ENV, env_kwargs=dict(ENV_KWARGS), max_new_tokens=MAX_NEW_TOKENS,
                             episodes=sft_steps * BATCH, tasks=tasks, eval_episodes=1, seed_start=block)
    run = lab.sft(f"seed{seed}/sft{f'-{tasks}tasks' if tasks else ''}", config, sft_steps, seed=seed,
                  save_every=max(1, sft_steps // 5))
    steps = sorted(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*"))
    kept = [step for step in steps if step >= sft_steps * 0.5]
    return [(step, run / f"checkpoint-{step}") for step in (kept[-1:] if lab.budget.smallest else kept)]


def _measure(lab: Lab, seed: int, data: str, step: int, path: Any, grpo_steps: int, tasks: int,
             seed_start: int) -> dict:
    name = f"seed{seed}/{data.replace(' ', '-')}/step{step}"
    forced = lab.cached(f"{name}/expert_forcing", lambda: expert_forcing(path, ENV, ENV_KWARGS, tasks))
    before = lab.cached(f"{name}/pass_before", lambda: play(path, ENV, ENV_KWARGS, tasks, N, seed=seed,
                                                            max_new_tokens=MAX_NEW_TOKENS))
    config = GRPOTrainingConfig(env=ENV, env_kwargs=dict(ENV_KWARGS), model=str(path), max_new_tokens=MAX_NEW_TOKENS,
                                eval_episodes=1, seed_start=seed_start)
    tuned = lab.grpo(f"{name}/grpo", config, grpo_steps, seed=seed, batch=lab.budget.batch(BATCH))
    after = lab.cached(f"{name}/pass_after", lambda: play(tuned, ENV, ENV_KWARGS, tasks, 4, seed=seed,
                                                          max_new_tokens=MAX_NEW_TOKENS))
    return {"seed": seed, "data": data, "step": step, "forced": forced, "before": before["successes"],
            "after": after["successes"], "checks": lab.grpo_checks(f"{name}/grpo")}


class Checkpoints:
    """Per checkpoint and task: the expert's log-ratio, the token count and the pass rates, as arrays
    ``[checkpoints, tasks]``, with the statistics computed on any resample of tasks."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.seed = np.array([r["seed"] for r in rows])
        self.log_ratio = np.array([np.subtract(r["forced"]["log_mu"], r["forced"]["log_pi"]) for r in rows])
        self.nll = np.array([np.negative(r["forced"]["log_pi"]) for r in rows])
        self.tokens = np.array([r["forced"]["tokens"] for r in rows], dtype=float)
        self.pass_n = np.array([per_task_pass_at_k(r["before"], N) for r in rows])
        self.pass_1 = np.array([per_task_pass_at_k(r["before"], 1) for r in rows])
        self.after = np.array([per_task_pass_at_k(r["after"], 1) for r in rows])

    def stats(self, cols: np.ndarray, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        rows = np.arange(len(self.rows)) if rows is None else rows
        sub = np.ix_(rows, cols)
        out = {f"pcov_{m}": (self.log_ratio[sub] > math.log(m)).mean(1) for m in (1, 2, 4, 8)}
        out["ce"] = self.nll[sub].sum(1) / self.tokens[sub].sum(1)
        # The profile's tail: the 90% quantile of log μ − log π (nats), which orders checkpoints that tie on Pcov.
        out["tail"] = np.quantile(self.log_ratio[sub], 0.9, axis=1)
        out["pass_n"], out["pass_1"], out["after"] = self.pass_n[sub].mean(1), self.pass_1[sub].mean(1), self.after[sub].mean(1)
        out["gain"] = out["after"] - out["pass_1"]
        return out

    def claims_values(self, cols: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        s = self.stats(cols, rows)
        cov, loss = -s[f"pcov_{N // 2}"], -s["ce"]
        return np.array([ranking_edge(cov, loss, s["pass_n"]), spearman(cov, s["gain"]) - spearman(loss, s["gain"]),
                         self.selection(s, rows)])

    def selection(self, s: dict[str, np.ndarray], rows: np.ndarray | None) -> float:
        """Mean over seeds of pass@1 after RL of the coverage-selected minus the loss-selected checkpoint."""
        rows = np.arange(len(self.rows)) if rows is None else rows
        diffs = []
        for seed in np.unique(self.seed[rows]):
            mine = np.flatnonzero(self.seed[rows] == seed)
            by_cov = min(mine, key=lambda i: (s["pcov_8"][i], s["tail"][i], i))
            by_loss = min(mine, key=lambda i: (s["ce"][i], i))
            diffs.append(s["after"][by_cov] - s["after"][by_loss])
        return float(np.mean(diffs))

    def bootstrap(self, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The claims' values and their 95% intervals, resampling seeds and tasks."""
        rng = np.random.default_rng(seed)
        tasks, seeds = self.log_ratio.shape[1], np.unique(self.seed)
        value = self.claims_values(np.arange(tasks))
        boots = []
        for _ in range(draws):
            picked = rng.choice(seeds, len(seeds)) if len(seeds) > 1 else seeds
            rows = np.concatenate([np.flatnonzero(self.seed == s) for s in picked])
            boots.append(self.claims_values(rng.integers(0, tasks, tasks), rows))
        return value, np.quantile(np.array(boots), [0.025, 0.975], axis=0)


def disagreements(x: np.ndarray, y: np.ndarray, target: np.ndarray) -> int:
    """Pairs of checkpoints with different ``target`` that ``x`` and ``y`` order differently (``ranking_edge``'s)."""
    i, j = np.triu_indices(len(target), 1)
    sign = np.sign(target[i] - target[j])
    return int(((sign != 0) & (np.sign(x[i] - x[j]) * sign != np.sign(y[i] - y[j]) * sign)).sum())


def _table(data: Checkpoints) -> list[str]:
    s = data.stats(np.arange(data.log_ratio.shape[1]))
    lines = [f"| seed | SFT data | SFT step | cross-entropy (nats/token) | Pcov(2) | Pcov({N // 2}) | pass@1 | "
             f"pass@{N} | pass@1 after GRPO | RL gain (points) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(data.rows):
        lines.append(f"| {r['seed']} | {r['data']} | {r['step']} | {s['ce'][i]:.3f} | {pct(s['pcov_2'][i])} | "
                     f"{pct(s['pcov_8'][i])} | {pct(s['pass_1'][i])} | {pct(s['pass_n'][i])} | {pct(s['after'][i])} | "
                     f"{100 * s['gain'][i]:+.1f} |")
    cov, loss = -s[f"pcov_{N // 2}"], -s["ce"]
    lines += ["", f"| Spearman ρ over {len(data.rows)} checkpoints | with pass@{N} | with the RL gain | with pass@1 after RL |",
              "|---|---|---|---|"]
    for label, x in ((f"−Pcov({N // 2}) (coverage)", cov), ("−cross-entropy (loss)", loss)):
        lines.append(f"| {label} | {spearman(x, s['pass_n']):+.2f} | {spearman(x, s['gain']):+.2f} | "
                     f"{spearman(x, s['after']):+.2f} |")
    return lines


def run(lab: Lab) -> Section:
    budget = lab.budget
    sft_steps, grpo_steps, tasks = budget.steps(SFT_STEPS, least=4), budget.steps(GRPO_STEPS), budget.tasks(100)
    grpo_batch = budget.batch(BATCH)
    span = sft_steps * BATCH + grpo_steps * grpo_batch // 8  # training seeds one seed uses: disjoint blocks
    rows = []
    for seed in range(budget.seeds):
        for label, narrow in DATASETS.items():
            for step, path in _checkpoints(lab, seed, sft_steps, seed * span, narrow):
                rows.append(_measure(lab, seed, label, step, path, grpo_steps, tasks, seed * span + sft_steps * BATCH))
    data = Checkpoints(rows)
    value, (low, high) = data.bootstrap()
    within = over(budget.seeds)
    full = data.stats(np.arange(tasks))
    rho_cov, rho_ce = spearman(-full[f"pcov_{N // 2}"], full["pass_n"]), spearman(-full["ce"], full["pass_n"])
    edge_pairs = disagreements(-full[f"pcov_{N // 2}"], -full["ce"], full["pass_n"])
    claims = [
        claim("coverage_predicts_pass_at_n", f"Coverage at N/2 predicts pass@N better than the loss does (N = {N}).",
              f"where −Pcov({N // 2}) and −CE order two checkpoints differently: share of those pairs coverage orders "
              f"as pass@{N} does − share the loss does", value[0], (low[0], high[0]), within, margin=0.1,
              note=f"{edge_pairs} of {len(rows) * (len(rows) - 1) // 2} checkpoint pairs are ordered differently by "
              f"coverage and loss (and differ in pass@{N}); over all checkpoints ρ(−Pcov({N // 2}), pass@{N}) − "
              f"ρ(−CE, pass@{N}) = {rho_cov - rho_ce:+.3f} ({rho_cov:+.2f} − {rho_ce:+.2f}): once both rank "
              "correlations are near 1 their difference has no room to reach a margin, so the claim is tested on "
              "the pairs where the two predictors disagree; 0.1 (10 points) is the smallest edge that counts"),
        claim("coverage_predicts_rl_gain", "Coverage predicts the RL gain better than the loss does.",
              "ρ(−Pcov(8), RL gain) − ρ(−CE, RL gain)", value[1], (low[1], high[1]), within, margin=0.1),
        claim("select_by_coverage", "Selecting the SFT checkpoint by coverage gives a better RL result than by loss.",
              "pass@1 after RL: coverage-selected − loss-selected checkpoint", value[2], (low[2], high[2]), within,
              margin=0.02, note="the same checkpoint chosen both ways gives exactly 0"),
    ]
    setup = [f"`{ENV}` with `{ENV_KWARGS}` (3 digits, 4 attempts), the tiny model; {budget.seeds} SFT seed(s) on each "
             f"of two datasets of {sft_steps} steps × {BATCH} expert episodes (lr 2e-3): a fresh training task every "
             f"episode, or cycling over {DATASETS['32 tasks']} tasks (each code seen about "
             f"{sft_steps * BATCH // DATASETS['32 tasks']} times); a checkpoint every {max(1, sft_steps // 5)} steps "
             f"from half-way: {len(rows)} checkpoints",
             f"each checkpoint: teacher-forced on the expert's episodes of {tasks} held-out tasks (cross-entropy, "
             f"coverage), {N} samples per task at temperature 1 (pass@1, pass@{N}), then GRPO {grpo_steps} steps × "
             f"{grpo_batch} episodes (groups of 8, lr 3e-4, the same training tasks for every checkpoint) and 4 samples per "
             "task (pass@1 after RL)"]
    figures = {"checkpoints": [{k: r[k] for k in ("seed", "data", "step")} for r in rows],
               **{k: v.tolist() for k, v in data.stats(np.arange(tasks)).items()}}
    checks = {f"GRPO from SFT on {label}, step {step}": mean_checks([r["checks"] for r in rows
                                                                    if (r["data"], r["step"]) == (label, step)])
              for label, step in dict.fromkeys((r["data"], r["step"]) for r in rows)}
    return Section("coverage", "Coverage predicts what RL can reach",
                   "Does the coverage profile of an SFT checkpoint predict its pass@N, and what GRPO reaches from it, "
                   "better than its held-out cross-entropy?", setup, _table(data), claims, figures, checks=checks,
                   checks_note=GRPO_CHECKS_NOTE)
