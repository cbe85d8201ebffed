"""The `interplay` command. One function per subcommand (``cmd_<name>``), registered in ``build_parser``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from interplay.seeds import EVAL_SEED_START, TRAIN_SEED_START


def _env_kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"--env-kwargs must be a JSON object, e.g. '{{\"width\": 4}}': {error}") from None
    if not isinstance(kwargs, dict):
        raise SystemExit(f"--env-kwargs must be a JSON object, got {text!r}.")
    return kwargs


def _agent(args: argparse.Namespace) -> Any:
    from interplay.agents import from_spec

    sampling: dict[str, Any] = {"temperature": args.temperature, "max_new_tokens": args.max_new_tokens}
    if args.model in ("expert", "random", "human"):
        sampling = {}
    return from_spec(args.model, **sampling)


def _add_sampling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny", help="'tiny', a checkpoint dir, an HF id, "
                        "'openai:MODEL', 'expert' or 'random' (default: tiny)")
    parser.add_argument("--env-kwargs", default=None, help="JSON object of environment constructor kwargs")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-turns", type=int, default=None, help="cap on agent turns per episode")


def cmd_list(args: argparse.Namespace) -> int:
    import interplay

    for entry in interplay.list_envs(include_unavailable=args.all):
        print(entry)
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from interplay import models

    if args.name != models.TINY:
        raise SystemExit(f"`interplay model` builds the embedded model: use 'tiny', got {args.name!r}.")
    path = models.build_tiny(args.out)
    print(f"wrote the tiny model and tokenizer to {path}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from interplay.agents import HumanAgent
    from interplay.rollout import EnvSpec, rollout

    print("Type your reply at the prompt; 'hint' shows the expert's move.")
    [trajectory] = rollout(EnvSpec(args.env_id, _env_kwargs(args.env_kwargs), args.seed), HumanAgent())
    print(f"[user] {trajectory.messages[-1]['content']}")
    print(f"episode over: success={trajectory.success} reward={trajectory.reward:g} turns={trajectory.turns}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from interplay import models
    from interplay.rollout import EnvSpec, rollout, save_trajectories

    agent = _agent(args)
    tokenizer = None if agent.tokenizer is not None else models.load_tokenizer(args.tokenizer)
    spec = EnvSpec(args.env, _env_kwargs(args.env_kwargs))
    seeds = range(args.seed_start, args.seed_start + args.n)
    trajectories = rollout(spec, agent, seeds=seeds, group_size=args.group_size, max_turns=args.max_turns,
                           tokenizer=tokenizer, progress=True)
    save_trajectories(args.out, trajectories)
    success = sum(t.success for t in trajectories) / len(trajectories)
    print(f"wrote {len(trajectories)} trajectories to {args.out} (success rate {success:.3f})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from interplay.evaluation import evaluate

    result = evaluate(args.env, _agent(args), args.n, args.samples, env_kwargs=_env_kwargs(args.env_kwargs),
                      seed_start=args.seed_start, max_turns=args.max_turns)
    print(f"{result['env']} {result['model']}: success rate {result['success_rate']:.3f}, mean turns "
          f"{result['mean_turns']:.2f}, invalid-action rate {result['invalid_rate']:.3f} "
          f"({result['n_episodes']} episodes)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interplay", description=__doc__.split(".")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the environments")
    p.add_argument("--all", action="store_true", help="also those that cannot run here, with the reason")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("model", help="write the embedded tiny model as an HF checkpoint directory")
    p.add_argument("name", choices=["tiny"])
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("play", help="play an environment yourself")
    p.add_argument("env_id")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--env-kwargs", default=None)
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("rollout", help="play episodes with a model and save trajectories (JSONL)")
    p.add_argument("--env", required=True)
    p.add_argument("-n", type=int, default=8, help="number of seeds (tasks)")
    p.add_argument("--group-size", type=int, default=1, help="episodes per seed")
    p.add_argument("--seed-start", type=int, default=TRAIN_SEED_START)
    p.add_argument("--tokenizer", default="tiny", help="tokenizes text agents' replies (expert, random, openai)")
    p.add_argument("--out", required=True)
    _add_sampling(p)
    p.set_defaults(func=cmd_rollout)

    p = sub.add_parser("eval", help="success rate on held-out seeds")
    p.add_argument("--env", required=True)
    p.add_argument("-n", type=int, default=100, help="number of held-out tasks (seeds)")
    p.add_argument("--samples", type=int, default=1, help="episodes per task")
    p.add_argument("--seed-start", type=int, default=EVAL_SEED_START)
    p.add_argument("--out", default=None, help="write the results as JSON")
    _add_sampling(p)
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import gymnasium

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, RuntimeError, gymnasium.error.Error) as error:
        # Bad input gets one readable line, not a stack trace.
        print(f"interplay {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
