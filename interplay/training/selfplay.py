"""Self-play on two-player zero-sum TextArena games, on interplay's multi-turn GRPO through TRL.

SPIRAL (Liu et al. 2025, "SPIRAL: Self-Play on Zero-Sum Games Incentivizes Reasoning via Multi-Agent Multi-Turn
Reinforcement Learning"): the policy plays both seats of a game against itself and learns from both, with
role-conditioned advantage estimation (RAE) in place of GRPO's group baseline.

- Episodes: the prompt dataset holds task keys (``interplay/TextArena-TicTacToe-v0 seed=12``); the rollout takes
  them in pairs. Each pair draws an opponent from the pool (``SelfPlayConfig.opponents``): ``self`` plays one game
  with the current policy in both seats (two rows: seat 0's and seat 1's episodes); any other opponent plays two
  games, the policy first in one and second in the other. Every row is one policy seat's episode
  (``interplay.matches``): its own replies are agent tokens (``env_mask`` 1), the other seat's moves and the
  game's messages are environment turns (0), so the two seats of a self-play game are masked and credited apart.
- Rewards (``interplay.envs.textarena.duel.RewardRules``): win +1, loss -1, draw ``draw_reward``; a seat that
  loses by illegal moves (more than ``error_allowance`` rejected moves in a row) gets ``illegal_reward`` and
  the other seat wins; a game cut at ``max_plies`` moves is a draw worth ``timeout_reward`` to both.
- RAE: a running baseline per (game, role) ``b <- decay * b + (1 - decay) * mean R`` over the batch's episodes of
  that role (starting at the first batch's mean), then ``A = R - b`` for each episode of the role; every agent
  token of the episode gets ``A`` (``EpisodeReward``'s advantage terms replace TRL's group advantages in
  ``MultiTurnGRPOTrainer``). The baselines are logged (``selfplay/baseline_seat<k>``) and restart on resume.
- Opponent pool (``interplay.training.opponent_pool``): comma-separated ``name[:weight]`` of ``self``, ``past``
  (snapshots of the policy), ``random``, ``builtin``, ``expert`` (fixed opponents) and ``model=PATH``.

``interplay train selfplay --env interplay/TextArena-TicTacToe-v0 --output-dir runs/sp``; at the end the model
plays ``eval_games`` games per seat against each of ``eval_opponents`` (``interplay.games.evaluate_game``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interplay.envs.textarena.duel import RewardRules, env_game, fixed_opponents
from interplay.seeds import check_train_seeds
from interplay.training.config import PolicyConfig, help_field
from interplay.training.opponent_pool import OpponentPool, parse_pool


@dataclass
class SelfPlayConfig(PolicyConfig):
    """interplay's side of a self-play run (TRL's ``GRPOConfig`` holds the optimizer and sampling side; the
    model's side is ``PolicyConfig``'s)."""

    env: str = help_field("a two-player TextArena game, interplay/TextArena-<Game>-v0 (TicTacToe, ConnectFour, Nim, "
                     "KuhnPoker, ...)", default="interplay/TextArena-TicTacToe-v0")
    opponents: str = help_field("opponent pool, comma-separated name[:weight] of self, past, random, builtin, expert, "
                           "model=PATH", default="self")
    past_every: int = help_field("steps between snapshots of the policy for 'past'", default=10)
    past_keep: int = help_field("newest policy snapshots kept for 'past'", default=4)
    baseline_decay: float = help_field("RAE: decay of the running baseline per game and role (SPIRAL's alpha)",
                                  default=0.95)
    error_allowance: int | None = help_field("rejected moves in a row a seat may make; the next loses the game (1: "
                                        "TextArena's rule)", default=1)
    max_plies: int = help_field("moves (both seats') before a game is cut as a timeout draw", default=100)
    draw_reward: float = help_field("reward of a draw to both seats", default=0.0)
    illegal_reward: float = help_field("reward of the seat that loses by illegal moves", default=-1.0)
    timeout_reward: float = help_field("reward to both seats of a game cut at max_plies", default=0.0)
    eval_games: int = help_field("games per seat against each eval opponent after training (0: no evaluation)",
                            default=50)
    eval_opponents: str = help_field("fixed opponents of the final evaluation", default="random,builtin")
    fused_lm_head: bool | None = help_field("TRL's fused LM head (None: on a GPU only)", default=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.game = env_game(self.env)
        self.pool = parse_pool(self.opponents, self.game)
        for name, least in (("past_every", 0), ("past_keep", 1), ("max_plies", 1), ("eval_games", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}.")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay!r}.")
        if self.error_allowance is not None and (not isinstance(self.error_allowance, int) or self.error_allowance < 0):
            raise ValueError(f"error_allowance must be None or an integer >= 0, got {self.error_allowance!r}.")
        known = fixed_opponents(self.game)
        for name in self.eval_opponents.split(",") if self.eval_opponents else []:
            if name not in known:
                raise ValueError(f"eval_opponents: {self.game} has no fixed opponent {name!r}; it has {', '.join(known)}.")

    @property
    def rules(self) -> RewardRules:
        return RewardRules(draw=self.draw_reward, illegal=self.illegal_reward, timeout=self.timeout_reward)


def make_selfplay_rollout(config: SelfPlayConfig, pool: OpponentPool) -> Any:
    """``rollout_func(prompts, trainer)`` for ``GRPOTrainer``: prompts in pairs, one policy seat per row."""
    from interplay.agents.hf import HFAgent
    from interplay.matches import play_matches
    from interplay.training.grpo_rollout import episode_fields
    from interplay.training.grpo_tasks import parse_task_prompt

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, list]:
        if len(prompts) % 2:
            raise ValueError(f"self-play takes prompts in pairs, got {len(prompts)}: use an even "
                             "per_device_train_batch_size.")
        model, tokenizer, args = trainer.accelerator.unwrap_model(trainer.model), trainer.processing_class, trainer.args

        def make_agent(m: Any) -> HFAgent:
            return HFAgent(m, tokenizer, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k or 0,
                           max_new_tokens=config.max_new_tokens, **config.agent_kwargs())

        step = trainer.state.global_step
        pool.refresh(step, model, make_agent)
        policy = make_agent(model)
        policy.name = "policy"
        pairings, seeds, rows, kinds = [], [], [], []
        for k in range(0, len(prompts), 2):
            env_id, seed = parse_task_prompt(prompts[k])
            if env_id != config.env:
                raise ValueError(f"prompt names {env_id!r} but this run plays {config.env!r}.")
            kind, opponent = pool.draw(np.random.default_rng([seed, step, k]), make_agent)
            g = len(pairings)
            if opponent is None:
                pairings.append((policy, policy))
                seeds.append(seed)
                rows += [(g, 0), (g, 1)]
            else:
                pairings += [(policy, opponent), (opponent, policy)]
                seeds += [seed, seed]
                rows += [(g, 0), (g + 1, 1)]
            kinds += [kind, kind]
        matches = play_matches(config.game, pairings, seeds, rules=config.rules,
                               error_allowance=config.error_allowance, max_plies=config.max_plies)
        played = [matches[g].trajectories[s] for g, s in rows]
        out = episode_fields(played, tokenizer.eos_token_id)
        out["reward"] = [matches[g].rewards[s] for g, s in rows]
        out["role"] = [s for _, s in rows]
        out["opponent"] = kinds
        return out

    return rollout_func


def role_advantages(rewards: Sequence[float], roles: Sequence[int], baselines: dict[Any, float], decay: float,
                    game: str = "") -> list[float]:
    """SPIRAL's RAE: per role, update ``baselines[(game, role)]`` with the batch mean (EMA, ``decay``), then
    ``A = R - b`` (the module docstring); ``baselines`` is updated in place."""
    r, roles_ = np.asarray(rewards, dtype=np.float64), np.asarray(roles)
    out = np.zeros(len(r))
    for role in sorted(set(roles_.tolist())):
        rows = roles_ == role
        key, mean = (game, role), float(r[rows].mean())
        baselines[key] = mean if key not in baselines else decay * baselines[key] + (1 - decay) * mean
        out[rows] = r[rows] - baselines[key]
    return out.tolist()


def selfplay_reward(config: SelfPlayConfig) -> Any:
    """The reward function TRL calls: the seats' game rewards, with RAE advantages in place of GRPO's."""
    from interplay.training.grpo_reward import AdvantageTerms, EpisodeReward

    class SelfPlayReward(EpisodeReward):
        def __init__(self) -> None:
            super().__init__()
            self.baselines: dict[Any, float] = {}

        def __call__(self, prompts: list[Any], completions: list[Any], reward: list[float], success: list[bool],
                     outcome: list[str], turns: list[int], invalid_actions: list[int], task: list[str],
                     role: list[int], opponent: list[str], trainer_state: Any = None, log_metric: Any = None,
                     **kwargs: Any) -> list[float]:
            advantages = role_advantages(reward, role, self.baselines, config.baseline_decay, config.game)
            self.advantage_terms = AdvantageTerms(bonus=advantages, keep_episode=False)
            if log_metric is not None:
                wins = np.array([o.startswith("win") for o in outcome], dtype=float)
                log_metric("episode/invalid_rate", sum(invalid_actions) / max(sum(turns), 1))
                log_metric("episode/mean_turns", float(np.mean(turns)))
                log_metric("selfplay/illegal_loss_rate", float(np.mean([o == "loss: illegal" for o in outcome])))
                for seat in (0, 1):
                    if (config.game, seat) in self.baselines:
                        log_metric(f"selfplay/baseline_seat{seat}", self.baselines[(config.game, seat)])
                for kind in sorted(set(opponent)):
                    rows = [i for i, k in enumerate(opponent) if k == kind]
                    log_metric(f"selfplay/win_rate_vs_{kind}", float(wins[rows].mean()))
            return [float(r) for r in reward]

    return SelfPlayReward()


def selfplay_defaults(**overrides: Any) -> dict[str, Any]:
    """TRL ``GRPOConfig`` defaults for self-play: GRPO's, with pairs of rows (2 generations per seed) and every
    checkpoint kept (earlier checkpoints are opponents and rating entries)."""
    from interplay.training.grpo import grpo_defaults

    return grpo_defaults(**{"num_generations": 2, "per_device_train_batch_size": 32, "save_total_limit": None,
                            **overrides})


@dataclass
class SelfPlayResult:
    output_dir: str
    evaluation: dict[str, Any] | None  # interplay.games.evaluate_game of the trained model, or None
    log_history: list[dict[str, Any]]
    seconds: float
    heldout: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"saved {self.output_dir} in {self.seconds:.0f} s"
        if self.evaluation:
            from interplay.games import format_wdl

            text += "\n" + format_wdl(self.evaluation)
        return text


def build_selfplay_trainer(config: SelfPlayConfig, args: Any, callbacks: Sequence[Any] = ()) -> Any:
    """A ``MultiTurnGRPOTrainer`` with the self-play rollout and RAE reward (see the module docstring)."""
    from interplay.training.common import check_launch, start_model
    from interplay.training.grpo import check_multiprocess
    from interplay.training.grpo_tasks import grpo_task_count, prompt_dataset
    from interplay.training.grpo_trainer import MultiTurnGRPOTrainer
    from interplay.training.trl_internals import check_trl

    check_trl()
    check_launch(args)
    check_multiprocess(args)
    if args.use_vllm:
        raise ValueError("self-play samples with the trainer's model; use_vllm is not supported.")
    if args.per_device_train_batch_size % 2:
        raise ValueError(f"per_device_train_batch_size must be even (self-play takes rows in pairs: the two seats), "
                         f"got {args.per_device_train_batch_size}.")
    model, tokenizer, peft_config, adapters = start_model(config)
    n = grpo_task_count(None, args.max_steps, args.per_device_train_batch_size, args.num_generations,
                        args.gradient_accumulation_steps, num_processes=args.world_size)
    check_train_seeds(config.seed_start, n, "games")
    trainer = MultiTurnGRPOTrainer(model=model, episode_reward=selfplay_reward(config), args=args,
                                   train_dataset=prompt_dataset(config.env, n, config.seed_start),
                                   processing_class=tokenizer,
                                   rollout_func=make_selfplay_rollout(config, OpponentPool(config)),
                                   callbacks=[*([adapters] if adapters else []), *callbacks],
                                   peft_config=peft_config, fused_lm_head=config.fused_lm_head)
    check_multiprocess(args, trainer.accelerator)
    return trainer


def train_selfplay(config: SelfPlayConfig, args: Any, resume: str | bool | None = None,
                   callbacks: Sequence[Any] = (), console: Any = None) -> SelfPlayResult:
    """Train by self-play; save model + tokenizer to ``args.output_dir``; evaluate it against fixed opponents."""
    from interplay.agents.hf import HFAgent
    from interplay.games import evaluate_game
    from interplay.training.common import use_console

    started = time.perf_counter()
    trainer = build_selfplay_trainer(config, args, callbacks)
    use_console(trainer, console)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(args.output_dir)
    evaluation = None
    if config.eval_games and config.eval_opponents and trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        agent = HFAgent(model, trainer.processing_class, temperature=args.temperature,
                        max_new_tokens=config.max_new_tokens, seed=args.seed, **config.agent_kwargs())
        evaluation = evaluate_game(config.env, agent, config.eval_opponents.split(","), config.eval_games,
                                   error_allowance=config.error_allowance, max_plies=config.max_plies)
        evaluation["model"] = args.output_dir
    return SelfPlayResult(args.output_dir, evaluation, list(trainer.state.log_history), time.perf_counter() - started)
