"""The horizon study: how imitation degrades as episodes get longer, and what GRPO on top changes.

For each maze size (the horizon knob: the shortest path grows with the side), train the tiny model by
SFT on the shortest-path expert, then GRPO from that checkpoint, and measure on held-out mazes:

- success: share of episodes that reach the goal (greedy, temperature 0);
- per-step error: share of the agent's moves that did not shorten the way to the goal
  (``info["optimal"]`` of Maze-v0), the quantity behavioural cloning compounds: with a per-step error
  e and a horizon H, success falls roughly like (1 - e)^H.

Prints a table and writes ``horizon.png`` + ``horizon.json`` to ``--out``.

Runtime on a loaded 2-core CPU, measured: ``--sizes 3 4 6 --grpo-steps 10`` took 27 minutes (3x3 275 s,
4x4 311 s, 6x6 1017 s: longer episodes), so the default (3x3 to 6x6, 20 GRPO steps) takes over 30; ``--quick`` (3x3 and 4x4, 40 SFT
+ 3 GRPO steps, 40 tasks) about 3-4 minutes and only shows the mechanics and the trend.

    python examples/horizon.py --quick --out runs/horizon-quick
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from trl import GRPOConfig, SFTConfig

from interplay.agents import HFAgent
from interplay.evaluation import evaluate
from interplay.metrics import mean_interval
from interplay.rollout import Trajectory
from interplay.training.config import GRPOTrainingConfig, ImitationConfig
from interplay.training.grpo import grpo_defaults, train_grpo
from interplay.training.imitation import sft_defaults, train_imitation

ENV = "interplay/Maze-v0"


def score(checkpoint: str, env_kwargs: dict[str, Any], tasks: int) -> dict[str, float]:
    """Greedy success and per-step error (non-optimal moves / moves) on ``tasks`` held-out mazes."""
    played: list[Trajectory] = []
    result = evaluate(ENV, HFAgent(checkpoint, temperature=0.0, max_new_tokens=3), tasks, env_kwargs=env_kwargs,
                      trajectories=played, progress=False)
    # infos[0] is the reset info; every later info is one agent move.
    moves = [info["optimal"] for t in played for info in t.infos[1:] if "optimal" in info]
    errors = [1.0 - float(m) for m in moves]
    interval = mean_interval(errors)
    return {"success": result["success_rate"], "success_ci95": result["success_rate_ci95"],
            "step_error": interval.mean, "step_error_ci95": [interval.low, interval.high],
            "mean_turns": result["mean_turns"]}


def study(size: int, out: Path, sft_steps: int, grpo_steps: int, tasks: int) -> dict[str, Any]:
    env_kwargs = {"size": size}
    started = time.perf_counter()
    sft_dir, grpo_dir = out / f"{size}x{size}" / "sft", out / f"{size}x{size}" / "grpo"
    train_imitation(ImitationConfig(env=ENV, env_kwargs=env_kwargs, episodes=sft_steps * 64, eval_episodes=1,
                                    max_new_tokens=3),
                    SFTConfig(output_dir=str(sft_dir), **sft_defaults(max_steps=sft_steps, save_strategy="no",
                                                                      disable_tqdm=True)), progress=False)
    sft_s = time.perf_counter() - started
    sft = score(str(sft_dir), env_kwargs, tasks)
    train_grpo(GRPOTrainingConfig(env=ENV, env_kwargs=env_kwargs, model=str(sft_dir), seed_start=sft_steps * 64,
                                  max_new_tokens=3, eval_episodes=1),
               GRPOConfig(output_dir=str(grpo_dir), **grpo_defaults(max_steps=grpo_steps, save_strategy="no",
                                                                    disable_tqdm=True)))
    grpo = score(str(grpo_dir), env_kwargs, tasks)
    return {"size": size, "sft": sft, "grpo": grpo, "sft_train_s": sft_s, "wall_s": time.perf_counter() - started}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "success", "held-out success (greedy)"),
                           (axes[1], "step_error", "per-step error (non-optimal moves)")):
        for stage in ("sft", "grpo"):
            ys = [r[stage][key] for r in rows]
            lows = [r[stage][f"{key}_ci95"][0] for r in rows]
            highs = [r[stage][f"{key}_ci95"][1] for r in rows]
            (line,) = ax.plot(sizes, ys, marker="o", label="SFT" if stage == "sft" else "SFT + GRPO")
            if all(v is not None for v in lows + highs):
                ax.fill_between(sizes, lows, highs, color=line.get_color(), alpha=0.15)
        ax.set(xlabel="maze side (horizon grows with it)", ylabel=label, ylim=(-0.02, 1.02), xticks=sizes)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Imitation vs horizon (Maze-v0, compact observation, tiny model)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 4, 5, 6])
    parser.add_argument("--sft-steps", type=int, default=150)
    parser.add_argument("--grpo-steps", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=100, help="held-out mazes per size")
    parser.add_argument("--quick", action="store_true", help="sizes 3 4, 40 SFT + 3 GRPO steps, 40 tasks")
    parser.add_argument("--out", default="runs/horizon")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.sft_steps, args.grpo_steps, args.tasks = [3, 4], 40, 3, 40
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'size':>5} | {'SFT success':>11} | {'SFT step err':>12} | {'GRPO success':>12} | "
          f"{'GRPO step err':>13} | {'wall s':>6}")
    for size in args.sizes:
        row = study(size, out, args.sft_steps, args.grpo_steps, args.tasks)
        rows.append(row)
        print(f"{size}x{size:<3} | {row['sft']['success']:>11.2f} | {row['sft']['step_error']:>12.3f} | "
              f"{row['grpo']['success']:>12.2f} | {row['grpo']['step_error']:>13.3f} | {row['wall_s']:>6.0f}", flush=True)
    (out / "horizon.json").write_text(json.dumps(rows, indent=1))
    plot(rows, out / "horizon.png")
    print(f"wrote {out / 'horizon.png'} and {out / 'horizon.json'}")


if __name__ == "__main__":
    main()
