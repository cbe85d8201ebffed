"""One seed of the study's exploration section (``interplay.study.exploration``) at its budget-1 sizes.

Prints the start, every arm, pass@k per model and each method's difference from its control at pass@1 and
pass@64, with 95% percentile-bootstrap intervals over the held-out tasks only (one seed says nothing about
seed-to-seed spread). Its jobs are the section's own (names, configs, seed blocks), cached in ``--out``: seeds
run side by side as separate processes into the section's folder are read back by ``interplay study``.

    OMP_NUM_THREADS=1 python benchmarks/exploration_pilot.py --out runs/study/exploration --seed 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from interplay.study import exploration as ex
from interplay.study.core import Budget, Lab
from interplay.training.config import ImitationConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/explore-pilot")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lab = Lab(args.out, Budget(1.0), log=lambda message: print(message, flush=True))
    b, seed = lab.budget, args.seed
    sft_steps, steps, tasks = b.steps(ex.SFT_STEPS, least=4), b.steps(ex.GRPO_STEPS), b.tasks(ex.EVAL_TASKS)
    span = sft_steps * ex.BATCH + b.tasks(ex.TRAIN_TASKS)  # the section's seed blocks
    started = time.perf_counter()
    config = ImitationConfig(env=ex.ENV, env_kwargs=dict(ex.ENV_KWARGS), max_new_tokens=ex.MAX_NEW_TOKENS,
                             episodes=sft_steps * ex.BATCH, eval_episodes=1, seed_start=seed * span)
    sft = lab.sft(f"seed{seed}/sft", config, sft_steps, seed=seed)
    scores = {"sft": ex._scores(lab, f"seed{seed}/sft", sft, tasks, seed)}
    for name in ex.ARMS:
        arm = ex._arm(lab, seed, name, sft, steps, seed * span + sft_steps * ex.BATCH)
        scores[name] = ex._scores(lab, f"seed{seed}/{name}", arm["path"], tasks, seed)
        print(name, "manipulation checks", arm["checks"], flush=True)
    for name, s in scores.items():
        print(name, " ".join(f"pass@{k} {100 * s[i].mean():.1f}" for i, k in enumerate(ex.K)))
    rng = np.random.default_rng(0)
    for name, control in ex.CONTROL.items():
        for i, k in ((0, 1), (-1, ex.K[-1])):
            diff = scores[name][i] - scores[control][i]
            low, high = np.quantile(rng.choice(diff, (2000, len(diff))).mean(1), [0.025, 0.975])
            print(f"{name} − {control}, pass@{k}: {100 * diff.mean():+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] points")
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
