"""Self-play on TicTacToe with the embedded tiny model: win rates against fixed opponents and earlier checkpoints.

For each seed: ``interplay train selfplay`` (the policy in both seats, ``opponents="self"``, SPIRAL's RAE) from the
untrained ``tiny`` model, one token a reply (a move is one digit, which TextArena's TicTacToe reads as ``[d]``),
checkpoints at the middle and the end. Then each of step 0 (the untrained model), the middle and the final
checkpoint plays ``--games`` games per seat against the random and the built-in opponent (held-out seeds,
sampling at temperature 1, the agent seeded by the run's seed), and the final checkpoint plays step 0 and the
middle checkpoint. Win / draw / loss rates: the mean over seeds with a t interval (95%, one value per seed),
and the pooled games with Wilson's interval. Illegal moves: ``--error-allowance`` rejected moves in a row are
allowed, the next loses the game, in training and evaluation alike.

    python benchmarks/selfplay.py --out runs/selfplay-bench          # ~20 min on 2 (shared) CPU cores
    python benchmarks/selfplay.py --out runs/sp-smoke --steps 2 --games 2 --seeds 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's interplay

from interplay.games import evaluate_game, wdl  # noqa: E402
from interplay.matches import play_matches  # noqa: E402
from interplay.metrics import mean_interval, proportion_interval  # noqa: E402
from interplay.seeds import EVAL_SEED_START  # noqa: E402

ENV = "interplay/TextArena-TicTacToe-v0"
OPPONENTS = ("random", "builtin")


def agent(model: str, seed: int) -> object:
    from interplay.agents import HFAgent

    return HFAgent(model, max_new_tokens=1, temperature=1.0, seed=seed)


def train(out: Path, seed: int, args: argparse.Namespace) -> None:
    from trl import GRPOConfig

    from interplay.training.selfplay import SelfPlayConfig, selfplay_defaults, train_selfplay

    if (out / "config.json").exists():
        return
    config = SelfPlayConfig(env=ENV, opponents="self", max_new_tokens=1, error_allowance=args.error_allowance,
                            eval_games=0, seed_start=seed * 100_000)
    trl = GRPOConfig(output_dir=str(out), **selfplay_defaults(
        seed=seed, max_steps=args.steps, per_device_train_batch_size=args.batch, learning_rate=args.lr,
        save_strategy="steps", save_steps=max(1, args.steps // 2), disable_tqdm=True, logging_steps=1))
    result = train_selfplay(config, trl)
    (out / "log_history.json").write_text(json.dumps(result.log_history))


def versus(a: object, b: object, n: int, error_allowance: int) -> dict:
    """``a``'s win / draw / loss against ``b``: ``n`` games with ``a`` first, ``n`` with ``a`` second."""
    seeds = [EVAL_SEED_START + i for i in range(n)] * 2
    matches = play_matches(ENV, [(a, b)] * n + [(b, a)] * n, seeds, error_allowance=error_allowance)
    return wdl([(m.results[0 if k < n else 1].outcome, m.results[0 if k < n else 1].reason)
                for k, m in enumerate(matches)])


def seed_run(seed: int, args: argparse.Namespace) -> dict:
    out = Path(args.out) / f"seed_{seed}"
    cached = out / "result.json"
    if cached.exists():
        return json.loads(cached.read_text())
    started = time.perf_counter()
    train(out, seed, args)
    trained = time.perf_counter() - started
    stages = {"step 0": "tiny", f"step {max(1, args.steps // 2)}": str(out / f"checkpoint-{max(1, args.steps // 2)}"),
              f"step {args.steps}": str(out)}
    result: dict = {"seed": seed, "train_seconds": trained, "fixed": {}, "versus": {}}
    for stage, model in stages.items():
        ev = evaluate_game(ENV, agent(model, seed), OPPONENTS, args.games, error_allowance=args.error_allowance)
        result["fixed"][stage] = ev["opponents"]
    final = agent(str(out), seed)
    for stage, model in list(stages.items())[:-1]:
        result["versus"][stage] = versus(final, agent(model, seed + 1), args.games, args.error_allowance)
    result["seconds"] = time.perf_counter() - started
    cached.write_text(json.dumps(result, indent=1))
    return result


def cell(rows: list[dict], kind: str) -> str:
    """Mean over seeds [t 95%] · pooled count with Wilson [95%]."""
    rates = [r[f"{kind}_rate"][0] for r in rows]
    count, n = sum(r[kind] for r in rows), sum(r["n"] for r in rows)
    pooled = proportion_interval(count, n)
    if len(rates) > 1:
        ci = mean_interval(rates, method="t")
        seeds = f"{ci.mean:.2f} [{max(0.0, ci.low):.2f}, {min(1.0, ci.high):.2f}]"
    else:
        seeds = f"{rates[0]:.2f}"
    return f"{seeds} · {count}/{n} [{pooled.low:.2f}, {pooled.high:.2f}]"


def report(results: list[dict], args: argparse.Namespace, seconds: float) -> str:
    lines = [f"TicTacToe self-play, tiny model, {len(results)} seeds, {args.steps} steps x {args.batch} episodes, "
             f"lr {args.lr}, error allowance {args.error_allowance}, {args.games} games per seat; "
             f"wall {seconds / 60:.1f} min",
             "", "Win rate (mean over seeds [t 95%] · pooled wins/games [Wilson 95%]):", "",
             "| checkpoint | opponent | seat | win | draw | loss | illegal losses |", "|---|---|---|---|---|---|---|"]
    for stage in results[0]["fixed"]:
        for opponent in OPPONENTS:
            for seat in ("first", "second", "all"):
                rows = [r["fixed"][stage][opponent][seat] for r in results]
                lines.append(f"| {stage} | {opponent} | {seat} | {cell(rows, 'win')} | {cell(rows, 'draw')} | "
                             f"{cell(rows, 'loss')} | {sum(r['illegal_losses'] for r in rows)} |")
    lines += ["", f"Final checkpoint (step {args.steps}) against earlier ones, both seats:", "",
              "| opponent | win | draw | loss | illegal losses |", "|---|---|---|---|---|"]
    for stage in results[0]["versus"]:
        rows = [r["versus"][stage] for r in results]
        lines.append(f"| {stage} | {cell(rows, 'win')} | {cell(rows, 'draw')} | {cell(rows, 'loss')} | "
                     f"{sum(r['illegal_losses'] for r in rows)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16, help="episodes (seats) per step: batch/2 self-play games")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--games", type=int, default=20, help="evaluation games per seat and opponent")
    p.add_argument("--error-allowance", type=int, default=1)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    results = [seed_run(seed, args) for seed in range(args.seeds)]
    seconds = time.perf_counter() - started
    text = report(results, args, seconds)
    print(text)
    (Path(args.out) / "report.md").write_text(text + "\n")
    (Path(args.out) / "results.json").write_text(json.dumps({"args": vars(args), "seeds": results,
                                                             "seconds": seconds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
