"""GRPO with and without each exploration method, at equal sample budgets, on tasks SFT rarely solves.

A short SFT on expert play (cached in ``--out``) gives a model that finds a code (CodeBreaker, 3
digits, 3 attempts: the bisecting expert itself needs up to 4) only sometimes; measured: with 4
digits nothing is ever solved after a 60-step SFT, so no method has anything to amplify. From it, GRPO runs
of ``--steps`` optimizer steps each (same batch, group size, learning rate, seeds: the same number of
sampled episodes) with: no shaping, each exploration shaper, and the critique-prediction loss. Every
model plays the same held-out tasks ``--k`` times (``interplay.evaluation.evaluate``, temperature 1)
and the table shows pass@1 and pass@k, averaged over ``--seeds`` training seeds.

The last line is ``best_explore_over_grpo_pass_at_k=<ratio>``: the best exploration method's pass@k
over plain GRPO's.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from trl import GRPOConfig, SFTConfig  # noqa: E402

from interplay import models  # noqa: E402
from interplay.agents import HFAgent  # noqa: E402
from interplay.evaluation import evaluate  # noqa: E402
from interplay.training.grpo import GRPOTrainingConfig, grpo_defaults, train_grpo  # noqa: E402
from interplay.training.imitation import ImitationConfig, sft_defaults, train_imitation  # noqa: E402

#: name -> (exploration short form, critique_weight); the shaper weights are the library's defaults.
METHODS = {
    "grpo": (None, 0.0),
    "outcome_count": ("outcome_count", 0.0),
    "batch_diversity": ("batch_diversity", 0.0),
    "repexp": ("repexp", 0.0),
    "pkpo": ("pkpo:k=4", 0.0),
    "critique": (None, 0.1),
}


def score(path: str, env: str, env_kwargs: dict, n: int, k: int) -> dict[str, float]:
    model, tokenizer = models.load(path)
    agent = HFAgent(model, tokenizer, temperature=1.0, max_new_tokens=6, seed=0)
    result = evaluate(env, agent, n, samples=k, env_kwargs=env_kwargs, progress=False)
    return {"pass@1": result["pass_at_k"]["1"], f"pass@{k}": result["pass_at_k"][str(k)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="interplay/CodeBreaker-v0")
    parser.add_argument("--digits", type=int, default=3)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--sft-steps", type=int, default=150)
    parser.add_argument("--steps", type=int, default=10, help="GRPO optimizer steps per run")
    parser.add_argument("--batch", type=int, default=64, help="episodes per GRPO step")
    parser.add_argument("--group", type=int, default=8, help="episodes per task (num_generations)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per method")
    parser.add_argument("--n", type=int, default=100, help="held-out tasks")
    parser.add_argument("--k", type=int, default=8, help="samples per held-out task (pass@k at this k)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {list(METHODS)}")
    parser.add_argument("--out", default="bench_exploration", help="checkpoints (the SFT one is reused)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    env_kwargs = {"digits": args.digits, "max_attempts": args.attempts, "instructions": False}
    out = Path(args.out)
    sft_dir = out / f"sft-d{args.digits}-a{args.attempts}-s{args.sft_steps}"
    if not (sft_dir / "config.json").exists():
        config = ImitationConfig(env=args.env, env_kwargs=env_kwargs, episodes=64 * args.sft_steps, eval_episodes=20,
                                 max_new_tokens=6)
        train_imitation(config, SFTConfig(output_dir=str(sft_dir), **sft_defaults(
            max_steps=args.sft_steps, save_strategy="no", logging_steps=20, disable_tqdm=True)), progress=False)
    rows = {"sft": [score(str(sft_dir), args.env, env_kwargs, args.n, args.k)]}
    print(f"sft ready ({time.perf_counter() - started:.0f} s): {rows['sft'][0]}", flush=True)
    for name in args.methods.split(","):
        exploration, critique = METHODS[name]
        for seed in range(args.seeds):
            run_dir = out / f"{name}-seed{seed}"
            config = GRPOTrainingConfig(env=args.env, env_kwargs=env_kwargs, model=str(sft_dir), max_new_tokens=6,
                                        exploration=exploration, critique_weight=critique, eval_episodes=20,
                                        seed_start=seed * args.steps * args.batch)
            grpo = GRPOConfig(output_dir=str(run_dir), seed=seed, **grpo_defaults(
                max_steps=args.steps, per_device_train_batch_size=args.batch, num_generations=args.group,
                save_strategy="no", disable_tqdm=True, logging_steps=args.steps))
            result = train_grpo(config, grpo)
            rows.setdefault(name, []).append(score(str(run_dir), args.env, env_kwargs, args.n, args.k))
            print(f"{name} seed {seed} ({result.seconds:.0f} s train): {rows[name][-1]}", flush=True)

    key = f"pass@{args.k}"
    print(f"\n{args.env} {env_kwargs}, {args.n} held-out tasks x {args.k} samples, GRPO {args.steps} steps x "
          f"{args.batch} episodes, {args.seeds} seed(s); {time.perf_counter() - started:.0f} s in all")
    print(f"{'method':<16} {'pass@1':>8} {key:>8}")
    means = {}
    for name, scores in rows.items():
        means[name] = {m: float(np.mean([s[m] for s in scores])) for m in ("pass@1", key)}
        print(f"{name:<16} {means[name]['pass@1']:>8.3f} {means[name][key]:>8.3f}")
    explore = [n for n in means if n not in ("sft", "grpo")]
    if "grpo" in means and explore:
        best = max(explore, key=lambda n: means[n][key])
        print(f"best: {best}")
        base = means["grpo"][key]
        print(f"best_explore_over_grpo_pass_at_k={means[best][key] / base if base > 0 else float('nan'):.3f}")


if __name__ == "__main__":
    main()
