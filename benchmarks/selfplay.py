"""Self-play on TicTacToe with the embedded tiny model: win rates against fixed opponents and earlier checkpoints.

The untrained ``tiny`` model (a character-level Llama) almost never replies with a legal move (9 digits of a
~120-token vocabulary), so every game ends by illegal moves and the game itself gives next to no signal (a
pilot of 14 self-play steps from it did not move its invalid-move rate). So first a format warm-up, shared by
every seed: SFT on both seats of ``--warmup-games`` games between two uniformly random legal players (it
teaches the reply format, ``[d]``, and no strategy). Then, for each seed, ``interplay train selfplay`` from that
checkpoint (the policy in both seats, ``opponents="self"``, SPIRAL's RAE), checkpoints at the middle and the
end. Each of step 0 (the warm-up), the middle and the final checkpoint plays ``--games`` games per seat against
the random and the built-in opponent (held-out seeds, temperature 1, the agent seeded by the run's seed), and
the final checkpoint plays step 0 and the middle checkpoint. Win / draw / loss: the mean over seeds with a t
interval (95%, one value per seed) and the pooled games with Wilson's interval. Illegal moves:
``--error-allowance`` rejected moves in a row are allowed, the next loses the game, in training and evaluation.

    python benchmarks/selfplay.py --out runs/selfplay-bench          # ~20-25 min on 2 (shared) CPU cores
    python benchmarks/selfplay.py --out runs/sp-smoke --warmup-steps 2 --steps 2 --games 2 --seeds 1
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
MAX_NEW_TOKENS = 4  # "[4]" and the end token


def agent(model: str, seed: int) -> object:
    from interplay.agents import HFAgent

    return HFAgent(model, max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, seed=seed)


def warmup(out: Path, args: argparse.Namespace) -> str:
    """SFT of ``tiny`` on random legal play (both seats), the start of every seed's self-play."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from interplay import models
    from interplay.agents.chat import ChatEncoder
    from interplay.training.imitation import sequence_rows, sft_defaults

    if (out / "config.json").exists():
        return str(out)
    model, tokenizer = models.load("tiny")
    seeds = list(range(args.warmup_games))
    matches = play_matches(ENV, [("random", "random")] * len(seeds), seeds, encoder=ChatEncoder(tokenizer))
    rows = sequence_rows([t for m in matches for t in m.trajectories.values()])
    sft = SFTConfig(output_dir=str(out), **sft_defaults(max_steps=args.warmup_steps, per_device_train_batch_size=8,
                                                        warmup_steps=5, save_strategy="no", disable_tqdm=True,
                                                        logging_steps=10))
    trainer = SFTTrainer(model=model, args=sft, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    trainer.train()
    trainer.save_model(str(out))
    return str(out)


def train(out: Path, seed: int, start: str, args: argparse.Namespace) -> None:
    from trl import GRPOConfig

    from interplay.training.selfplay import SelfPlayConfig, selfplay_defaults, train_selfplay

    if (out / "config.json").exists():
        return
    config = SelfPlayConfig(env=ENV, model=start, opponents="self", max_new_tokens=MAX_NEW_TOKENS,
                            error_allowance=args.error_allowance,
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


def seed_run(seed: int, start: str, args: argparse.Namespace) -> dict:
    out = Path(args.out) / f"seed_{seed}"
    cached = out / "result.json"
    if cached.exists():
        return json.loads(cached.read_text())
    started = time.perf_counter()
    train(out, seed, start, args)
    trained = time.perf_counter() - started
    stages = {"step 0": start, f"step {max(1, args.steps // 2)}": str(out / f"checkpoint-{max(1, args.steps // 2)}"),
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
    lines = [f"TicTacToe self-play from the format warm-up ({args.warmup_steps} SFT steps), {len(results)} seeds, {args.steps} steps x {args.batch} episodes, "
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
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=16, help="episodes (seats) per step: batch/2 self-play games")
    p.add_argument("--lr", type=float, default=3e-4, help="1e-3 broke the warm-up's format within 2 steps in a pilot")
    p.add_argument("--games", type=int, default=20, help="evaluation games per seat and opponent")
    p.add_argument("--error-allowance", type=int, default=1)
    p.add_argument("--warmup-games", type=int, default=64, help="random-vs-random games for the format warm-up")
    p.add_argument("--warmup-steps", type=int, default=40, help="SFT steps of the warm-up (batch 8)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    start = warmup(Path(args.out) / "warmup", args)
    warm = time.perf_counter() - started
    results = [seed_run(seed, start, args) for seed in range(args.seeds)]
    seconds = time.perf_counter() - started
    text = report(results, args, seconds) + f"\n\nwarm-up (SFT on random legal play): {warm / 60:.1f} min"
    print(text)
    (Path(args.out) / "report.md").write_text(text + "\n")
    (Path(args.out) / "results.json").write_text(json.dumps({"args": vars(args), "seeds": results,
                                                             "seconds": seconds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
