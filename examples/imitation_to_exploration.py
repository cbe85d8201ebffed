"""Tutorial: from imitation to exploration on CodeBreaker, step by step (what `interplay demo` runs).

Run it with ``python examples/imitation_to_exploration.py [--preset codebreaker] [--out runs/tutorial]``
(about 8 minutes on two CPU cores with the default preset; ``--preset tiny-test`` takes about a minute
and shows the mechanics without learning anything). Rerunning with the same ``--out`` skips the
stages already done.

The game: a secret 3-digit code; after each wrong guess the teacher replies with one hint per digit
(``=`` right, ``+`` the secret digit is higher, ``-`` lower) and the attempts left. Four attempts.
Evaluation uses codes never seen in training. An agent that uses the hints (bisection per digit)
always wins; an agent that ignores them almost never does (4 tries out of 1000 codes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from interplay.pipeline import get_preset, run_stage, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="codebreaker")
    parser.add_argument("--out", default="runs/tutorial")
    args = parser.parse_args()

    # A preset fixes every number of the run: environment, model, steps, batch sizes, learning rates,
    # held-out tasks and k. The default one was tuned by measurement to learn within minutes on a CPU.
    preset = get_preset(args.preset)
    out = Path(args.out)
    model = preset.model  # "tiny": a 0.6M-parameter transformer built offline (interplay.models)
    print(f"{preset.env}: {preset.eval_tasks} held-out tasks, {preset.k} samples each -> {out}")

    # Stage 1 - the untrained model. Every checkpoint is evaluated the same way: each held-out task is
    # played k times at temperature 1. pass@1 is the chance that one episode solves a task, pass@k
    # that at least one of k does. Pcov(N) (coverage profile) is the share of the expert's episodes
    # that the model finds at least N times less likely than the expert: an untrained model covers
    # nothing (Pcov ≈ 1 for every N), so RL alone could not find the expert's behaviour by sampling.
    stages = {"untrained": run_stage(preset, "untrained", out, model)}

    # Stage 2 - imitation. SFT on expert episodes (the expert bisects each digit from the hints it has
    # seen, so it is imitable from the agent's observations), loss on the agent's tokens only. Expect
    # pass@1 to jump from ~0 and Pcov(N) to fall: the model now puts probability on the expert's play.
    stages["sft"] = run_stage(preset, "sft", out, model)

    # Stage 3 - outcome-based RL. Multi-turn GRPO from the SFT checkpoint: 8 episodes per task, reward
    # 1 for cracking the code, advantages relative to the group. It sharpens what SFT made likely:
    # pass@1 rises toward pass@k, and pass@k itself moves less ("RL sharpens, it does not widen").
    stages["grpo"] = run_stage(preset, "grpo", out, model)

    # Stage 4 - GRPO + exploration, from the SAME SFT checkpoint with the SAME budget and tasks, so the
    # only difference is the exploration shaper (in the codebreaker preset the batch penalty on outcomes
    # repeated within a group, Song et al. 2025; the preset's `exploration` says). Compare pass@k and the paired differences in the report: an exploration
    # method is worth its cost when it keeps pass@k (the breadth) while GRPO narrows it.
    stages["grpo_explore"] = run_stage(preset, "grpo_explore", out, model)

    # The report: report.md (tables with 95% intervals across tasks, and paired differences on the same
    # tasks: with 100 tasks a difference of a few points is usually noise), report.json, and the plots
    # pass_at_k.png, coverage.png, success_by_turn.png and training_<stage>.png.
    write_report(out, preset, model, stages)
    print((out / "report.md").read_text())


if __name__ == "__main__":
    main()
