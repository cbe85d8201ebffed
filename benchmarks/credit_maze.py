"""Turn-level credit on the maze: episode (GRPO), return (ReBN) and anchor (GiGPO) from one SFT checkpoint.

``interplay/Maze-v0`` at its default size (4x4) and its own per-task turn limit (no cap), compact
observation, the tiny model replying in at most 3 tokens: the setting where episode-level GRPO did not
raise held-out success over SFT (issue #20). One SFT checkpoint (BFS expert), then for each credit and
seed the same GRPO (same steps, batch, groups, learning rate, training tasks: equal sampled episodes),
then greedy play on the same held-out mazes. Success with a 95% percentile-bootstrap interval over seeds
and tasks (``interplay.study.core.two_way_interval``), and each credit's difference to episode credit,
paired by seed and task.

    python benchmarks/credit_maze.py --out runs/credit-maze            # the issue's scale (slow on a CPU)
    python benchmarks/credit_maze.py --out runs/credit-small --grpo-steps 6 --batch 32 --tasks 50

Jobs are cached under ``--out`` (``interplay.study.core.Lab``): a rerun resumes. ``--dense`` trains the
turn-level credits on the maze's dense reward (``dense_reward=True``); episode credit always sees the
sparse one, as measured before.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's interplay

from interplay.study.core import Budget, Lab, play, two_way_interval  # noqa: E402
from interplay.training.config import GRPOTrainingConfig, ImitationConfig  # noqa: E402

ENV = "interplay/Maze-v0"
MAX_NEW_TOKENS = 3
CREDITS = ("episode", "return", "anchor")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--sft-steps", type=int, default=150)
    p.add_argument("--grpo-steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64, help="GRPO episodes per step (groups of 8)")
    p.add_argument("--tasks", type=int, default=100, help="held-out mazes, greedy, one play each")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--dense", action="store_true", help="the turn-level credits train on dense_reward=True")
    args = p.parse_args(argv)
    started = time.perf_counter()
    lab = Lab(args.out, Budget(1.0))
    sft = lab.sft("sft", ImitationConfig(env=ENV, max_new_tokens=MAX_NEW_TOKENS, episodes=args.sft_steps * 64,
                                         eval_episodes=1), args.sft_steps)
    results = {"sft": lab.cached("play-sft", lambda: play(sft, ENV, {}, args.tasks, temperature=0.0,
                                                           max_new_tokens=MAX_NEW_TOKENS))}
    for credit in CREDITS:
        for seed in range(args.seeds):
            kwargs = {"dense_reward": True} if args.dense and credit != "episode" else {}
            config = GRPOTrainingConfig(env=ENV, env_kwargs=kwargs, model=str(sft), max_new_tokens=MAX_NEW_TOKENS,
                                        eval_episodes=1, credit=credit, seed_start=args.sft_steps * 64 + 10_000)
            name = f"grpo-{credit}-{seed}"
            model = lab.grpo(name, config, args.grpo_steps, seed=seed, batch=args.batch)
            results[name] = lab.cached(f"play-{name}", lambda m=model: play(m, ENV, {}, args.tasks, temperature=0.0,
                                                                            max_new_tokens=MAX_NEW_TOKENS))
    success = {key: np.array([s[0] for s in r["successes"]], dtype=float) for key, r in results.items()}
    rows = [f"| SFT | {100 * success['sft'].mean():.1f} | | {results['sft']['mean_turns']:.1f} |"]
    summary = {"sft": float(success["sft"].mean())}
    for credit in CREDITS:
        arm = np.stack([success[f"grpo-{credit}-{s}"] for s in range(args.seeds)])
        value, low, high = two_way_interval(arm)
        diff = ""
        if credit != "episode":
            base = np.stack([success[f"grpo-episode-{s}"] for s in range(args.seeds)])
            d, dl, dh = two_way_interval(arm - base)
            diff = f"{100 * d:+.1f} [{100 * dl:+.1f}, {100 * dh:+.1f}]"
        turns = np.mean([results[f"grpo-{credit}-{s}"]["mean_turns"] for s in range(args.seeds)])
        rows.append(f"| GRPO, credit={credit} | {100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}] | {diff} | "
                    f"{turns:.1f} |")
        summary[credit] = [value, low, high]
    print(f"{ENV} (4x4, own turn limit), SFT {args.sft_steps} steps x 64; GRPO {args.grpo_steps} steps x {args.batch} "
          f"episodes (groups of 8) per credit and seed, {args.seeds} seeds; {args.tasks} held-out mazes, greedy"
          f"{'; return/anchor on dense_reward' if args.dense else ''}; {time.perf_counter() - started:.0f} s")
    print("| model | held-out success % [95% interval] | − episode credit, points [95%] | mean turns |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    (Path(args.out) / "summary.json").write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
