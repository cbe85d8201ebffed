"""Learning from feedback: does training with an informative teacher teach a model to use feedback in context?

Question: a model trained on episodes where a teacher critiques each wrong attempt (the rule teacher's
digit hints) should get better from attempt to attempt when it is given such hints: more *in-context
plasticity* than a model trained with a teacher that only says "incorrect", or trained on single attempts,
at the same training budget, on held-out tasks and on a feedback environment it was not trained on.

Method: CodeBreaker-v0 (3 digits, ``instructions=False``). Per seed, one format-competent start: SFT on the
expert's first attempt (one guess, no feedback: the part of the expert play every condition shares, so the
start learns to reply with a guess and nothing about hints). From it, three training conditions:
SFT on that condition's expert play, then multi-turn GRPO in that condition, with the same steps, batch,
learning rates, training tasks and TRL seeds: ``rule`` (digit hints, 4 attempts), ``none`` ("Incorrect, try
again.", 4 attempts) and ``single-turn`` (1 attempt). Every trained model then plays held-out codes greedily
with the rule teacher and 4 attempts, and an environment not trained on (``TRANSFER``: 4-digit codes);
beside them, the start and each SFT model on the held-out codes (where the plasticity comes from), each
final model in its own training condition, and the control: the rule-trained models given decoy hints
(same format, no information), which must lose what the hints' content gave them.

Formulas, for model seed s and task t (``turn[s,t]``: the attempt that found the code, or none):

- success by attempt ``S(k) = mean_{s,t} 1[turn[s,t] <= k]``, k = 1..K (cumulative);
- plasticity ``P = S(K) - S(1)``, per task ``p[s,t] = 1[turn <= K] - 1[turn = 1]``: the gain from attempt 1 to K;
- claim statistics: ``mean_{s,t} (p_a[s,t] - p_b[s,t])``, conditions paired by seed index (same training tasks
  and TRL seed) and task; 95% percentile bootstrap resampling seeds and tasks (``core.two_way_interval``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interplay.experiments import GRPO_CHECKS_NOTE, mean_checks, pct, pct_interval, with_interval
from interplay.study.core import (
    Lab,
    Section,
    claim,
    over,
    play,
    two_way_interval,
)

ENV = "interplay/CodeBreaker-v0"
BASE = {"digits": 3, "instructions": False}
ATTEMPTS = 4
#: Training conditions: the env kwargs each trains in (on top of BASE).
CONDITIONS = {"rule": {"teacher": "rule", "max_attempts": ATTEMPTS},
              "none": {"teacher": "none", "max_attempts": ATTEMPTS},
              "single-turn": {"teacher": "rule", "max_attempts": 1}}
#: Every model is evaluated here: held-out codes, rule teacher, 4 attempts.
HELD_OUT = {**BASE, "teacher": "rule", "max_attempts": ATTEMPTS}
#: The control: the rule teacher's format about another code, no information about the secret.
DECOY = {**HELD_OUT, "teacher": "decoy"}
#: Where every condition starts: SFT on the expert's first attempt, which every condition's expert play opens
#: with (one guess, no feedback): the reply format, nothing about hints.
START = {**BASE, "teacher": "rule", "max_attempts": 1}
#: The control's row: the rule-trained models on held-out codes with decoy hints.
CONTROL = "rule, decoy hints"
#: The feedback environment no condition trains on.
TRANSFER = {"digits": 4, "instructions": False, "teacher": "rule", "max_attempts": 5}
TRANSFER_NAME = "CodeBreaker-v0 with 4-digit codes, rule teacher, 5 attempts"
SFT_STEPS, GRPO_STEPS, BATCH, GROUP, SFT_LR, GRPO_LR = 150, 30, 64, 8, 2e-3, 3e-4
#: SFT steps of the shared start, before each condition's own SFT_STEPS. (Taking them out of the condition's
#: 150 instead, measured first with this start and with one trained under the decoy teacher, left the rule
#: condition at 0.3% and 1% solved: after 100 steps the tiny model has not yet learned the game.)
START_STEPS = 50
MAX_NEW_TOKENS = 5
#: Training seeds of model seed s: SFT from s * SEED_BLOCK, GRPO from s * SEED_BLOCK + GRPO_OFFSET.
SEED_BLOCK, GRPO_OFFSET, GRPO_TASKS_CAP = 60_000, 50_000, 10_000
#: The shared start's SFT episodes come from seed s * SEED_BLOCK + START_OFFSET on (below the GRPO block).
START_OFFSET = 40_000
#: Expert episodes per SFT run at most: the expert is deterministic and there are only 800 training codes,
#: so more episodes repeat the same ones (3200 cover ~98% of them); SFT cycles through them.
SFT_EPISODES_CAP = 3200
MARGIN = 0.03


@dataclass
class Evaluation:
    """One condition's models on one environment: ``solved[s, t, k]`` (task t solved within attempt k + 1 by
    seed s's model) and the share of replies with no readable guess."""

    solved: np.ndarray
    unreadable: float


# ------------------------------------------------------------------------------------------- training
def first_expert_success(start: int, kwargs: dict[str, Any]) -> int:
    """Episodes from training seed ``start`` until the first one the single-attempt expert solves (its one
    guess is 444): the library refuses expert data without a success."""
    from interplay.envs.codebreaker import CodeBreakerEnv

    env = CodeBreakerEnv(**kwargs)
    for n in range(START_OFFSET):
        env.reset(seed=start + n)
        if env.task.answer == env.expert_action():
            return n + 1
    raise RuntimeError(f"no code {env.expert_action()} in training seeds {start}..{start + START_OFFSET}")


def start(lab: Lab, seed: int) -> Path:
    """Seed ``seed``'s format-competent start, shared by every condition: SFT on the expert's first attempt
    (training seeds past the conditions' SFT episodes, before their GRPO block)."""
    from interplay.training.config import ImitationConfig

    steps = lab.budget.steps(START_STEPS)
    first = seed * SEED_BLOCK + START_OFFSET
    episodes = max(min(steps * BATCH, SFT_EPISODES_CAP), first_expert_success(first, START))
    config = ImitationConfig(env=ENV, env_kwargs=dict(START), episodes=episodes,
                             seed_start=first, max_new_tokens=MAX_NEW_TOKENS,
                             eval_episodes=8)
    return lab.sft(f"start/seed{seed}", config, steps, seed=seed, batch=BATCH, lr=SFT_LR)


def train(lab: Lab, condition: str, seed: int) -> Path:
    """From the shared start, SFT on the condition's expert play, then GRPO in the condition; the final
    model's folder."""
    from interplay.training.config import GRPOTrainingConfig, ImitationConfig

    kwargs = own_kwargs(condition)
    sft_steps = lab.budget.steps(SFT_STEPS)
    grpo_steps, batch = lab.budget.steps(GRPO_STEPS, least=1), lab.budget.batch(BATCH, GROUP)
    first = seed * SEED_BLOCK
    episodes = min(sft_steps * BATCH, SFT_EPISODES_CAP)
    if kwargs["max_attempts"] == 1:
        episodes = max(episodes, first_expert_success(first, kwargs))
    sft = lab.sft(f"{condition}/seed{seed}/sft", ImitationConfig(
        env=ENV, env_kwargs=kwargs, model=str(start(lab, seed)), episodes=episodes, seed_start=first,
        max_new_tokens=MAX_NEW_TOKENS, eval_episodes=8), sft_steps, seed=seed, batch=BATCH, lr=SFT_LR)
    grpo = GRPOTrainingConfig(env=ENV, env_kwargs=kwargs, model=str(sft), seed_start=first + GRPO_OFFSET,
                              tasks=min(grpo_steps * batch // GROUP, GRPO_TASKS_CAP),
                              max_new_tokens=MAX_NEW_TOKENS, eval_episodes=8)
    return lab.grpo(f"{condition}/seed{seed}/grpo", grpo, grpo_steps, seed=seed, batch=batch, group=GROUP,
                    lr=GRPO_LR)


def evaluation(lab: Lab, models: list[Path], where: str, kwargs: dict[str, Any]) -> Evaluation:
    """Every seed's model on ``kwargs`` (cached as the job ``<model>/eval_<where>/``)."""
    tasks = lab.budget.tasks(200)
    runs = [lab.cached(f"{m.relative_to(lab.root)}/eval_{where}", lambda m=m: play(
        m, ENV, kwargs, tasks, max_new_tokens=MAX_NEW_TOKENS, temperature=0.0)) for m in models]
    return Evaluation(solved_by([[turns[0] for turns in r["success_turn"]] for r in runs], kwargs["max_attempts"]),
                      float(np.mean([r["invalid_rate"] for r in runs])))


# ------------------------------------------------------------------------------------------- analysis
def solved_by(turns: list[list[int | None]], attempts: int) -> np.ndarray:
    """``[seeds, tasks, attempts]`` 0/1: solved within attempt k (k = 1..attempts)."""
    t = np.array([[a if a is not None else attempts + 1 for a in row] for row in turns])
    return (t[:, :, None] <= np.arange(1, attempts + 1)).astype(float)


def plasticity(solved: np.ndarray) -> np.ndarray:
    """Per seed and task: solved within K attempts minus solved at attempt 1."""
    return solved[:, :, -1] - solved[:, :, 0]


def curve_table(title: str, results: dict[str, Evaluation]) -> tuple[str, dict[str, Any]]:
    """Markdown table of success by attempt, plasticity and unreadable replies per condition, and its numbers."""
    attempts = next(iter(results.values())).solved.shape[2]
    head = " | ".join("attempt 1" if k == 1 else f"≤ {k}" for k in range(1, attempts + 1))
    lines = [title, "", f"| training | {head} | plasticity (≤ {attempts} − attempt 1) | unreadable replies |",
             "|---|" + "---|" * (attempts + 2)]
    numbers = {}
    for condition, e in results.items():
        by_k = [two_way_interval(e.solved[:, :, k]) for k in range(attempts)]
        gain = two_way_interval(plasticity(e.solved))
        cells = " | ".join(pct_interval(*c) for c in by_k)
        lines.append(f"| {condition} | {cells} | {with_interval(*gain)} | {pct(e.unreadable)} |")
        numbers[condition] = {"success_by_attempt": [list(c) for c in by_k], "plasticity": list(gain),
                              "unreadable": e.unreadable}
    return "\n".join(lines) + "\n", numbers  # a blank line ends the table before what follows


def stage_table(after_sft: dict[str, Evaluation], final: dict[str, Evaluation],
                own: dict[str, Evaluation]) -> tuple[str, dict[str, Any]]:
    """Held-out plasticity of the shared start, after each condition's SFT and after its SFT + GRPO, and success
    in each model's own training condition."""
    lines = ["Where the plasticity comes from, and each model in its own training condition (held-out codes, "
             "greedy): plasticity in points, success in %, [95% interval over seeds and tasks].", "",
             "| training | plasticity after SFT | after SFT + GRPO | solved in its own condition |",
             "|---|---|---|---|"]
    start = two_way_interval(plasticity(after_sft["start"].solved))
    lines.append(f"| the shared start (SFT on first attempts) | {with_interval(*start)} | – | – |")
    numbers: dict[str, Any] = {"start": {"plasticity": list(start), "unreadable": after_sft["start"].unreadable}}
    for c in final:
        sft, grpo = two_way_interval(plasticity(after_sft[c].solved)), two_way_interval(plasticity(final[c].solved))
        mine = two_way_interval(own[c].solved[:, :, -1])
        kind = f"{CONDITIONS[c]['teacher']} teacher, {plural(CONDITIONS[c]['max_attempts'], 'attempt')}"
        lines.append(f"| {c} | {with_interval(*sft)} | {with_interval(*grpo)} | {pct_interval(*mine)} ({kind}) |")
        numbers[c] = {"plasticity_after_sft": list(sft), "plasticity": list(grpo),
                      "own_condition_success": list(mine)}
    return "\n".join(lines) + "\n", numbers  # a blank line ends the table before what follows


def plasticity_claim(name: str, statement: str, results: dict[str, Evaluation], a: str, b: str,
                     note: str = "") -> Any:
    """Claim: condition ``a``'s models have more plasticity than ``b``'s, paired by seed index and task."""
    x, y = results[a].solved, results[b].solved
    value, low, high = two_way_interval(plasticity(x) - plasticity(y))
    return claim(name, statement, f"plasticity({a}) − plasticity({b}), paired by seed and task", value,
                 (low, high), over(x.shape[0]), MARGIN, note)


# ---------------------------------------------------------------------------------------------- section
def run(lab: Lab) -> Section:
    final = {c: [train(lab, c, s) for s in range(lab.budget.seeds)] for c in CONDITIONS}
    held = {c: evaluation(lab, ms, "heldout", HELD_OUT) for c, ms in final.items()}
    control = {**held, CONTROL: evaluation(lab, final["rule"], "heldout_decoy", DECOY)}
    far = {c: evaluation(lab, ms, "transfer", TRANSFER) for c, ms in final.items()}
    starts = [start(lab, s) for s in range(lab.budget.seeds)]
    after_sft = {"start": evaluation(lab, starts, "heldout", HELD_OUT),
                 **{c: evaluation(lab, [m.parent / "sft" for m in ms], "heldout", HELD_OUT) for c, ms in final.items()}}
    own = {c: evaluation(lab, ms, "heldout" if own_kwargs(c) == HELD_OUT else "own", own_kwargs(c))
           for c, ms in final.items()}
    held_md, held_numbers = curve_table(
        f"Held-out codes (3 digits, rule teacher, {ATTEMPTS} attempts, greedy): % solved within attempt k, mean "
        "over seeds [95% interval over seeds and tasks]; plasticity in points; % of replies with no readable guess. "
        f"Last row, the control: the rule-trained models given decoy hints (the rule format, about another code).",
        control)
    far_md, far_numbers = curve_table(f"Not trained on: {TRANSFER_NAME} (greedy), as above.", far)
    stage_md, stage_numbers = stage_table(after_sft, held, own)
    claims = [
        plasticity_claim("rule_vs_none", "Training with the rule teacher gives more in-context plasticity than "
                         "training with a no-information teacher.", held, "rule", "none",
                         baseline_note("none", held, own)),
        plasticity_claim("rule_vs_single_turn", "Training with the rule teacher gives more in-context plasticity "
                         "than single-turn training.", held, "rule", "single-turn",
                         baseline_note("single-turn", held, own)),
        plasticity_claim("hint_content", "The rule-trained models' plasticity comes from the hints' content: decoy "
                         "hints in the same format take it away.", control, "rule", CONTROL),
        plasticity_claim("transfer", "The plasticity from rule-teacher training carries over to a feedback "
                         "environment not trained on.", far, "rule", "none", transfer_note(far)),
    ]
    figures = {"heldout": held_numbers, "transfer": far_numbers, "stages": stage_numbers,
               "transfer_env": TRANSFER_NAME, "margin": MARGIN}
    checks = {f"{c} (GRPO in its own condition)": mean_checks([lab.grpo_checks(f"{c}/seed{s}/grpo")
                                                               for s in range(lab.budget.seeds)]) for c in CONDITIONS}
    return Section("feedback", "Learning from feedback", QUESTION, setup(lab), [held_md, far_md, stage_md], claims,
                   figures, checks=checks, checks_note=GRPO_CHECKS_NOTE)


def own_kwargs(condition: str) -> dict[str, Any]:
    return {**BASE, **CONDITIONS[condition]}


def baseline_note(condition: str, held: dict[str, Evaluation], own: dict[str, Evaluation]) -> str:
    return (f"the {condition}-trained models solve {pct(own[condition].solved[:, :, -1].mean())}% of the held-out "
            f"codes in their own training condition, and {pct(held[condition].unreadable)}% of their replies to the "
            "rule teacher's hints hold no readable guess.")


def transfer_note(far: dict[str, Evaluation]) -> str:
    if max(e.solved[:, :, -1].mean() for e in far.values()) > 0:
        return ""
    low, high = min(e.unreadable for e in far.values()), max(e.unreadable for e in far.values())
    share = f"{pct(low)}%" if pct(low) == pct(high) else f"{pct(low)}% to {pct(high)}%"
    return (f"no model solves any task there, and {share} of the replies hold no readable {TRANSFER['digits']}-digit "
            "guess: the models do not carry the game's format over, so this measures a format failure before any "
            "use of feedback.")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


QUESTION = ("Does training with a teacher's informative feedback teach a model to use feedback in context (to "
            "improve from attempt 1 to K), more than training with a teacher that only says \"incorrect\" or "
            "training on single attempts, and does that carry over to a feedback environment not trained on?")


def setup(lab: Lab) -> list[str]:
    b = lab.budget
    start_steps, grpo_steps = b.steps(START_STEPS), b.steps(GRPO_STEPS, least=1)
    sft_steps = b.steps(SFT_STEPS)
    start_episodes, sft_episodes = (min(n * BATCH, SFT_EPISODES_CAP) for n in (start_steps, sft_steps))
    return [
        f"Environment: {ENV}, 3-digit codes, `instructions=False` (short episodes for the tiny "
        "character-level model). Codes are split once: 800 training codes, 200 held-out codes no training "
        "episode uses.",
        f"Three training conditions from one shared start, {b.seeds} seeds each: rule (the rule teacher's digit "
        f"hints `+`/`-`/`=`, {ATTEMPTS} attempts), none (only \"Incorrect, try again.\", {ATTEMPTS} attempts), "
        "single-turn (1 attempt, so no feedback is ever read).",
        f"Per seed, one start for every condition: SFT from the tiny model on {start_episodes} single-attempt "
        "expert episodes (the first guess every condition's expert makes: the reply format, nothing about "
        f"hints), {start_steps} steps. From it, each condition: SFT on its own expert "
        f"play, {sft_steps} steps of {BATCH} episodes (drawn from {sft_episodes} expert episodes: the expert is deterministic, so more only repeat the 800 codes), lr {SFT_LR:g}; then GRPO "
        f"in the condition, {plural(grpo_steps, 'step')} of {b.batch(BATCH, GROUP)} episodes in groups of "
        f"{GROUP}, lr {GRPO_LR:g}; replies of at most {MAX_NEW_TOKENS} tokens. Seed s: training seeds from "
        f"{SEED_BLOCK}·s, the same in every condition, and TRL seed s.",
        "The control: the rule-trained final models play the same held-out codes with the decoy teacher, whose "
        "hints have the rule teacher's format and describe another code (`teacher=\"decoy\"`).",
        "The expert bisects each digit's remaining range. Under the rule teacher those ranges follow from the "
        "hints it shows; under the none teacher they still come from the hidden code, so its later guesses use "
        "information the agent never sees, and imitating it teaches guesses the observations cannot justify: "
        "that is part of what no-information feedback means for imitation. With only \"incorrect\" no policy "
        f"can expect more than about {ATTEMPTS} guesses' worth of the 200 held-out codes (~2%). Single-turn "
        "expert play is one guess, always 444, a training code (the library needs one success in the expert "
        "data, so single-turn SFT draws episodes up to the first code 444 where its block has none earlier).",
        f"Evaluation: each final model plays the first {b.tasks(200)} held-out tasks (codes drawn from the 200 "
        f"held-out ones, with repeats) once, greedily, with the rule teacher and {ATTEMPTS} attempts; the same "
        f"seeds of {TRANSFER_NAME} (a harder instance of the game no condition trains on: the 3-digit models "
        "must produce 4-digit guesses); each SFT model on the held-out tasks; and each final model in its own "
        "training condition. Greedy: one deterministic episode per model and task, so the spread is over seeds "
        "and tasks.",
        "Attempt-1 success is about 0 for every model: the first guess has nothing to go on, and the expert's, "
        "444, is never a held-out code; so plasticity here is about success within the attempts.",
        f"Claims compare per-task plasticity, paired by seed index and task; margin {MARGIN:g} "
        f"({100 * MARGIN:.0f} points): the smallest difference that counts.",
    ]
