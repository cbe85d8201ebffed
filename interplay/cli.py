"""The `interplay` command. One function per subcommand (``cmd_<name>``), registered in ``build_parser``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from interplay.seeds import EVAL_SEED_START, TRAIN_SEED_START


def _json_object(text: str | None, flag: str, example: str) -> dict[str, Any]:
    """The JSON object a ``--flag`` was given ({} when absent); anything else stops with an example."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"{flag} must be a JSON object, e.g. '{example}': {error}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"{flag} must be a JSON object, e.g. '{example}', got {text!r}.")
    return value


def _env_kwargs(text: str | None) -> dict[str, Any]:
    return _json_object(text, "--env-kwargs", '{"width": 4}')


def _chat_template_kwargs(text: str | None) -> dict[str, Any]:
    return _json_object(text, "--chat-template-kwargs", '{"enable_thinking": false}')


def _agent(args: argparse.Namespace, model: str | None = None, seed: int | None = None) -> Any:
    from interplay.agents import from_spec

    model = model or args.model
    if model in ("expert", "random", "human"):
        return from_spec(model)
    sampling: dict[str, Any] = {"temperature": args.temperature, "max_new_tokens": args.max_new_tokens}
    if not model.startswith("openai:"):
        sampling.update(chat_template_kwargs=_chat_template_kwargs(args.chat_template_kwargs),
                        thinking_budget=args.thinking_budget)
        if seed is not None and not model.startswith("vllm:"):
            sampling["seed"] = seed
    return from_spec(model, **sampling)


MODEL_HELP = ("'tiny', a catalogue name (smollm2-135m, gemma-3-270m), a checkpoint dir, an HF id, 'openai:MODEL', "
              "'vllm:MODEL' (a CUDA machine with vLLM), 'expert' or 'random'")


def _add_sampling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny", help=MODEL_HELP + " (default: tiny)")
    parser.add_argument("--env-kwargs", default=None, help="JSON object of environment constructor kwargs")
    parser.add_argument("--max-turns", type=int, default=None,
                        help="a turn limit imposed from outside the task (the TurnLimit wrapper: recorded in each "
                        "trajectory's manifest, and told to the agent where tighter than the environment's own); "
                        "default: the environment's own limit, set by its id and kwargs")
    parser.add_argument("--env-workers", type=int, default=0, metavar="N",
                        help="play the environments in N local `interplay serve` processes (CPU-heavy environments "
                        "step on N cores while the model samples; needs the openenv extra); default 0: in this "
                        "process")
    _add_generation(parser)


def _add_generation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--chat-template-kwargs", default=None, metavar="JSON",
                        help="JSON object passed to the model's chat template, e.g. '{\"enable_thinking\": false}'")
    parser.add_argument("--thinking-budget", type=int, default=None, metavar="N",
                        help="reasoning models: close the thinking part after N tokens (default: no limit)")


def cmd_list(args: argparse.Namespace) -> int:
    import interplay

    for entry in interplay.list_envs(include_unavailable=args.all):
        print(entry)
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    import shutil

    from interplay import models
    from interplay.models import catalogue

    if args.name == models.TINY:
        path = models.build_tiny(args.out)
        print(f"wrote the tiny model and tokenizer to {path}")
        return 0
    source = models.resolve(args.name)
    shutil.copytree(source, args.out, dirs_exist_ok=True)
    print(f"wrote {args.name} ({catalogue.CATALOGUE[args.name].description}) to {args.out}")
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
    from interplay.agents.chat import ChatEncoder
    from interplay.rollout import EnvSpec, rollout, save_trajectories

    agent = _agent(args)
    tokenizer = None if agent.tokenizer is not None else ChatEncoder(
        models.load_tokenizer(args.tokenizer), _chat_template_kwargs(args.chat_template_kwargs))
    spec = EnvSpec(args.env, _env_kwargs(args.env_kwargs))
    seeds = range(args.seed_start, args.seed_start + args.n)
    trajectories = rollout(spec, agent, seeds=seeds, group_size=args.group_size, max_turns=args.max_turns,
                           tokenizer=tokenizer, progress=True, env_workers=args.env_workers)
    save_trajectories(args.out, trajectories)
    success = sum(t.success for t in trajectories) / len(trajectories)
    print(f"wrote {len(trajectories)} trajectories to {args.out} (success rate {success:.3f})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from interplay.evaluation import evaluate
    from interplay.games import eval_command, is_two_player_game

    if is_two_player_game(args.env):  # win/draw/loss by seat against fixed opponents; ratings with --models
        return eval_command(args, lambda name: _agent(args, name, seed=args.seed_start))
    names = args.models or [args.model]
    if len(set(names)) != len(names):
        raise ValueError(f"--models lists a model twice: {names}; give each checkpoint once.")
    if args.out:  # fail now, not after the evaluation, if the result cannot be written
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).touch()
    results = {}
    for name in names:  # one agent in memory at a time; every model plays the same seeds
        agent = _agent(args, name)
        coverage = args.coverage and agent.model is not None
        if args.coverage and not coverage:
            print(f"{name}: no coverage profile (it needs a model's log-likelihoods; {name!r} is not a model)")
        result = evaluate(args.env, agent, args.n, args.samples, env_kwargs=_env_kwargs(args.env_kwargs),
                          seed_start=args.seed_start, max_turns=args.max_turns, coverage=coverage,
                          env_workers=args.env_workers)
        del agent
        results[name] = result
        k = str(result["samples"])
        print(f"{result['env']} {result['model']}: success rate {result['success_rate']:.3f}, mean turns "
              f"{result['mean_turns']:.2f}, invalid-action rate {result['invalid_rate']:.3f} "
              f"({result['n_episodes']} episodes), pass@{k} {result['pass_at_k'][k]:.3f}"
              + (f", Pcov(2) {result['coverage']['2']:.3f}" if "coverage" in result else ""))
    if args.plots:
        from pathlib import Path

        from interplay.plots import plot_all

        Path(args.plots).mkdir(parents=True, exist_ok=True)
        with open(Path(args.plots) / "results.json", "w") as f:
            json.dump(results, f, indent=1)
        written = plot_all(results, args.plots)
        print(f"wrote {', '.join(str(p) for p in written)} and {Path(args.plots) / 'results.json'}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results if args.models else results[names[0]], f, indent=1)
    return 0


def _stage(name: str) -> tuple[type, type, Any, Any]:
    """(interplay config class, TRL config class, TRL defaults, train function) of a training stage; the train
    function takes ``(config, args, resume=..., console=...)``."""
    if name == "sft":
        from functools import partial

        from trl import SFTConfig

        from interplay.training.imitation import sft_defaults, train_imitation

        # The console's bar is the run's: no second bar over the expert episodes.
        return _stage_class(name), SFTConfig, sft_defaults(), partial(train_imitation, progress=False)
    from trl import GRPOConfig

    if name == "selfplay":
        from interplay.training.selfplay import selfplay_defaults, train_selfplay

        return _stage_class(name), GRPOConfig, selfplay_defaults(), train_selfplay
    from interplay.training.grpo import grpo_defaults, train_grpo

    return _stage_class(name), GRPOConfig, grpo_defaults(), train_grpo


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected JSON, e.g. '{{\"width\": 4}}': {error}") from None


def _exploration_value(text: str) -> Any:
    """``--exploration``: a JSON object of ExplorationConfig fields, or the short form it parses."""
    from interplay.training.exploration import ExplorationConfig

    try:
        return _json_value(text) if text.lstrip().startswith("{") else ExplorationConfig.from_spec(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_config_fields(parser: Any, cls: type, prefix: str = "") -> None:
    """One ``--field-name`` flag per field of an interplay config dataclass, its help from the field's metadata;
    the fields of a nested ``LoraSettings`` as ``--lora-<field>`` (``prefix``). A flag not given is absent from
    the parsed namespace (``argparse.SUPPRESS``), so the dataclass's own default applies."""
    import types
    import typing

    from interplay.training.config import LoraSettings
    from interplay.training.exploration import ExplorationConfig

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint is LoraSettings:
            _add_config_fields(parser, LoraSettings, prefix=f"{f.name}_")
            # A `lora:` mapping in a --config file (the flags above add to it); no flag of its own.
            parser.add_argument(f"--{f.name}", type=_json_value, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            continue
        # `int | None` -> int; a generic like dict[str, Any] is itself the kind (never its args).
        kinds = [k for k in typing.get_args(hint) if k is not type(None)] if typing.get_origin(hint) in (
            typing.Union, types.UnionType) else [hint]
        kind = {int: int, float: float, str: str, bool: _bool_value, ExplorationConfig: _exploration_value}.get(
            kinds[0], _json_value)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f"{f.metadata['help']} (default: {default})".replace("%", "%%")
        name = prefix + f.name
        spellings = dict.fromkeys([f"--{name.replace('_', '-')}", f"--{name}"])  # TRL's parser takes both too
        parser.add_argument(*spellings, dest=name, type=kind, default=argparse.SUPPRESS, help=text)


def _bool_value(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _lora_fields(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with its flat ``lora_<field>`` entries (flags, or YAML keys written like them) folded into
    one ``lora`` dict over the ``lora`` mapping it may already hold."""
    from interplay.training.config import LoraSettings

    out = {k: v for k, v in values.items() if not k.startswith("lora_")}
    flat = {k[len("lora_"):]: v for k, v in values.items() if k.startswith("lora_") and v is not None}
    if flat:
        out["lora"] = {**dataclasses.asdict(LoraSettings.of(values.get("lora"))), **flat}
    return out


def _train_parser(stage: str, ours: type, trl_class: type, defaults: dict[str, Any]) -> Any:
    """``interplay train <stage>``'s parser: TRL's ``TrlParser`` over its config (every TRL field as
    ``--field-name`` with TRL's help, ``--config`` YAML files), ``defaults`` in place of TRL's, and interplay's
    config fields as a group of their own. A name both configs have is interplay's flag and sets both."""
    from trl import TrlParser

    parser = TrlParser(trl_class, prog=f"interplay train {stage}", conflict_handler="resolve", description=(
        f"{TRAIN_STAGES[stage]}. Options: every field of TRL's {trl_class.__name__}, with TRL's help and interplay's "
        f"defaults for this stage (bf16 only where a GPU supports it), then interplay's own ({ours.__name__}). "
        "Flags override --config, which overrides the defaults."))
    parser.set_defaults(**defaults)
    group = parser.add_argument_group(f"interplay ({ours.__name__})")
    group.add_argument("--config", default=None, metavar="YAML",
                       help="YAML file of field: value, interplay's fields and TRL's alike")
    group.add_argument("--resume", nargs="?", const="latest", default=None,
                       help="resume from a checkpoint directory (no value: the latest in --output-dir)")
    _add_config_fields(group, ours)
    # A name both configs have is interplay's flag alone (TRL's is replaced), with interplay's default: TRL's
    # parser fills every field of its config from the parsed options, so this one must always be there.
    trl_names = {f.name for f in dataclasses.fields(trl_class)}
    parser.set_defaults(**{f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                           for f in dataclasses.fields(ours) if f.name in trl_names})
    return parser


#: ``interplay train``'s stages and what each trains.
TRAIN_STAGES = {"sft": "imitation on expert play (offline or --mode dagger)",
                "grpo": "multi-turn GRPO on whole episodes",
                "selfplay": "self-play on a two-player TextArena game (SPIRAL's role-conditioned advantages)"}


def cmd_train(args: argparse.Namespace, extra: Sequence[str]) -> int:
    ours, trl_class, defaults, train = _stage(args.stage)
    parser = _train_parser(args.stage, ours, trl_class, defaults)
    trl_args, *parsed, from_file, rest = parser.parse_args_and_config(
        list(extra), return_remaining_strings=True, separate_remaining_strings=True)
    if from_file:
        names = sorted({f.name for f in dataclasses.fields(ours)} | {f.name for f in dataclasses.fields(trl_class)})
        raise SystemExit(f"--config: unknown fields {[key[2:] for key in from_file[::2]]}; accepted: the fields of {ours.__name__} and of "
                         f"TRL's {trl_class.__name__} ({len(names)} in all; `interplay train {args.stage} --help`).")
    if rest:
        raise SystemExit(f"interplay train {args.stage}: unknown options {rest}; accepted: the flags in "
                         f"`interplay train {args.stage} --help`.")
    given = vars(parsed[0]) if parsed else {}
    resume = given.pop("resume", None)
    given.pop("config", None)
    shared = {f.name for f in dataclasses.fields(ours)} & {f.name for f in dataclasses.fields(trl_class)}
    config = ours(**_lora_fields({**given, **{name: vars(trl_args)[name] for name in shared}}))
    if not trl_args.output_dir or trl_args.output_dir == "trainer_output":
        raise SystemExit(f"interplay train {args.stage}: give --output-dir DIR (where checkpoints and the model go).")
    result = _train_quietly(train, config, trl_args, True if resume == "latest" else resume, args.stage)
    if hasattr(result, "summary"):  # self-play: its own report (win/draw/loss by seat)
        print(result.summary())
        return 0
    score = result.heldout[-1] if result.heldout else {}
    print(f"saved {result.output_dir} in {result.seconds:.0f} s; held-out success rate (greedy, "
          f"{config.eval_episodes} tasks): {score.get('heldout/success_rate', float('nan')):.3f}; logs: "
          f"{LOG_FILE} and {MESSAGES_FILE} there")
    return 0


#: In a run's output directory: every trainer log entry as JSON lines, and the libraries' own messages.
LOG_FILE, MESSAGES_FILE = "train_log.jsonl", "messages.log"


def _train_quietly(train: Any, config: Any, trl_args: Any, resume: Any, stage: str) -> Any:
    """``train`` as the pipeline runs it: one progress bar with the live figures on the terminal; the trainer's
    log entries and the libraries' warnings and messages in files of the output directory."""
    from pathlib import Path

    from interplay.training.common import TrainingConsole, check_launch, library_output_to

    check_launch(trl_args)  # refused before anything is written to the output directory
    out = Path(trl_args.output_dir)
    console = TrainingConsole(out / LOG_FILE, f"train {stage}", bar=not trl_args.disable_tqdm)
    with library_output_to(out / MESSAGES_FILE):
        return train(config, trl_args, resume=resume, console=console)


def cmd_bench(args: argparse.Namespace) -> int:
    from interplay.bench import markdown, run_bench

    out = args.out or f"runs/bench/{_slug(args.model)}"
    report = run_bench(_agent(args), out, episodes=args.episodes, tasks=args.tasks, seed_start=args.seed_start)
    print(markdown(report))
    print(f"wrote bench.json, bench.md and episodes.html to {out}")
    return 0


def _slug(name: str) -> str:
    """A directory name for a model name or path."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.rstrip("/").split("/")[-1]) or "model"


def cmd_doctor(args: argparse.Namespace) -> int:
    from interplay.doctor import diagnose, render

    report = diagnose(args.model, env_id=args.env, chat_template_kwargs=_chat_template_kwargs(args.chat_template_kwargs))
    print(json.dumps(report, indent=1, ensure_ascii=False) if args.json else render(report))
    return 0 if report["usable"] else 1


def cmd_pipeline(args: argparse.Namespace) -> int:
    from interplay.pipeline import get_preset, run_pipeline, run_seeds, with_overrides

    preset = with_overrides(get_preset(args.preset), seed=args.seed, sft_steps=args.sft_steps,
                            grpo_steps=args.grpo_steps, sft_lr=args.sft_lr, grpo_lr=args.grpo_lr,
                            exploration=args.exploration)
    if args.seeds is None:
        result = run_pipeline(preset, args.out, model=args.model)
    else:
        result = run_seeds(preset, args.out, args.seeds, model=args.model)
    print(f"pipeline finished in {result['wall_s']:.0f} s; report: {result['report_md']}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from interplay.study import SECTIONS, run_study
    from interplay.study.core import Budget

    sections = [part.strip() for part in args.sections.split(",") if part.strip()] if args.sections else SECTIONS
    result = run_study(args.out, Budget(args.budget), sections=sections, workers=args.workers)
    print(f"study finished in {result['wall_s'] / 60:.1f} min; report: {result['report_md']}")
    for key, section in result["sections"].items():
        print(f"  {key}: {section.verdict}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from pathlib import Path

    from interplay.rollout import load_trajectories
    from interplay.viewer import write_html

    trajectories = load_trajectories(args.file)
    out = write_html(args.out or Path(args.file).with_suffix(".html"), trajectories,
                     title=f"interplay episodes: {Path(args.file).name}")
    print(f"wrote {out} ({len(trajectories)} episodes; open it in a browser)")
    return 0


def _seconds(text: str) -> float | None:
    """A limit in seconds from the command line; 0 means none."""
    seconds = float(text)
    return None if seconds == 0 else seconds


def _limit_defaults() -> Any:
    """The server limits' defaults (ServerLimits' docstring says why each is what it is)."""
    from interplay.integrations.server_limits import DEFAULT_LIMITS

    return DEFAULT_LIMITS


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from interplay.integrations import openenv, server_limits
    except ImportError as error:  # the optional extra is missing: one readable line
        raise RuntimeError(str(error)) from None

    limits = server_limits.ServerLimits(max_sessions=args.max_sessions, idle_timeout=args.idle_timeout,
                                        max_message_bytes=args.max_message_bytes, step_timeout=args.step_timeout)
    openenv.serve(args.env_id, _env_kwargs(args.env_kwargs), host=args.host, port=args.port, limits=limits,
                  expert=not args.no_expert, log_level=args.log_level)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return cmd_pipeline(build_parser().parse_args(["pipeline", "--preset", "codebreaker", "--out", args.out]))


def build_parser() -> argparse.ArgumentParser:
    from interplay.models import catalogue

    parser = argparse.ArgumentParser(prog="interplay", description=__doc__.split(".")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the environments")
    p.add_argument("--all", action="store_true", help="also those that cannot run here, with the reason")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("model", help="write a model by name as an HF checkpoint directory: the embedded tiny "
                       "model, or a real pretrained model resolved offline")
    p.add_argument("name", choices=["tiny", *catalogue.CATALOGUE], help="tiny: the embedded 0.6M-parameter model; "
                   + "; ".join(f"{m.name}: {m.description} ({m.licence})" for m in catalogue.CATALOGUE.values()))
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

    p = sub.add_parser("eval", help="success rate, pass@k and coverage on held-out seeds; on two-player games, "
                       "win/draw/loss by seat against fixed opponents and ratings")
    p.add_argument("--env", required=True)
    p.add_argument("-n", type=int, default=100, help="number of held-out tasks (seeds)")
    p.add_argument("--samples", type=int, default=1, help="episodes per task")
    p.add_argument("--seed-start", type=int, default=EVAL_SEED_START)
    p.add_argument("--out", default=None, help="write the results as JSON ({model: results} with --models)")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="compare several models (as --model accepts) on the same tasks; replaces --model")
    p.add_argument("--coverage", action="store_true",
                   help="also the coverage profile: each model's log-likelihood of the expert's episodes")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write pass@k, success-by-turn (and coverage) PNG plots and results.json here")
    p.add_argument("--opponents", default=None, metavar="LIST",
                   help="two-player games: fixed opponents, comma-separated from random,builtin,expert (default: "
                   "all the game has); -n is then games per seat and opponent")
    p.add_argument("--error-allowance", type=int, default=1,
                   help="two-player games: rejected moves in a row a seat may make before it loses (default 1)")
    p.add_argument("--max-plies", type=int, default=None,
                   help="two-player games: moves before a game is cut as a timeout draw (default: the library's, "
                   "interplay.envs.textarena.duel.MAX_PLIES)")
    _add_sampling(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train a model: imitation (sft), multi-turn RL (grpo) or self-play (selfplay), "
                       "on TRL")
    stages = p.add_subparsers(dest="stage", required=True)
    for stage, what in TRAIN_STAGES.items():
        # Every option, --help included, goes on to cmd_train's parser (TRL's, with interplay's fields).
        stages.add_parser(stage, help=what, add_help=False).set_defaults(func=cmd_train)

    from interplay import bench

    p = sub.add_parser("bench", help="a baseline table for a model: a fixed, versioned suite of tasks on held-out "
                       "seeds (success with intervals, by attempt, invalid replies, tokens, time)",
                       description=bench.__doc__.split("\n\n")[0] + f" Suite v{bench.SUITE_VERSION}: "
                       + ", ".join(bench.TASKS) + ".")
    p.add_argument("model", help=MODEL_HELP)
    _add_generation(p)
    p.add_argument("--episodes", type=int, default=16, help="held-out episodes per task (default: 16)")
    p.add_argument("--tasks", nargs="+", default=None, metavar="TASK", help="only these tasks of the suite")
    p.add_argument("--seed-start", type=int, default=EVAL_SEED_START)
    p.add_argument("--out", default=None, help="output directory (default: runs/bench/<model>); a rerun resumes")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("doctor", help="check a model before a long run: template quirks, stop ids, a dry run",
                       description="Load a model's tokenizer and configs (no weights) and print its family, chat "
                       "template quirks and what interplay does about them, stop/pad ids, the encoding used, and "
                       "a two-turn dry run with agent and environment tokens marked. Exit code 1: not usable.")
    p.add_argument("model", help="'tiny', a catalogue name (smollm2-135m, gemma-3-270m), a checkpoint directory "
                   "or a Hugging Face id (in the local cache)")
    p.add_argument("--env", default="interplay/CodeBreaker-v0", help="environment of the dry run")
    p.add_argument("--chat-template-kwargs", default=None, metavar="JSON",
                   help="JSON object passed to the chat template, e.g. '{\"enable_thinking\": false}'")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("pipeline", help="untrained -> SFT -> GRPO -> GRPO + exploration, evaluated and reported",
                       description="Run (or resume: finished stages are skipped) the imitation -> RL -> "
                       "exploration pipeline of a preset and write report.md, report.json and plots to --out.")
    p.add_argument("--preset", default="codebreaker", help="codebreaker (default), maze, tiny-test or gpu")
    p.add_argument("--out", required=True, help="report directory (rerun with the same one to resume)")
    p.add_argument("--model", default=None, help="override the preset's model ('tiny', 'smollm2-135m', a checkpoint dir, an HF id)")
    p.add_argument("--seed", type=int, default=None,
                   help="the run's seed (default 0): TRL's seed/data_seed of both trainers, the block of training "
                   "tasks, the evaluation agents' sampling; the held-out tasks stay the same")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="N independent runs, seeds SEED..SEED+N-1, in OUT/seed_<S>/; OUT/report.md and report.json "
                   "give every figure's mean with a 95%% interval over seeds next to each seed's interval over tasks")
    p.add_argument("--sft-steps", type=int, default=None, help="override SFT's optimizer steps (same expert episodes)")
    p.add_argument("--grpo-steps", type=int, default=None, help="override both RL stages' optimizer steps")
    p.add_argument("--sft-lr", type=float, default=None, help="override SFT's learning rate")
    p.add_argument("--grpo-lr", type=float, default=None, help="override both RL stages' learning rate")
    p.add_argument("--exploration", default=None, metavar="SPEC",
                   help="what grpo_explore adds, e.g. 'outcome_count:0.1' or 'pkpo:k=4' (name[:weight][:key=value])")
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser("view", help="write a static HTML page to browse trajectories (JSONL)",
                       description="One self-contained HTML page (no server, no network) listing the episodes of a "
                       "trajectory file, filterable by success and environment; each opens to its turns with token "
                       "counts, teacher feedback highlighted and thinking collapsed.")
    p.add_argument("file", help="trajectories as `interplay rollout --out` writes them (JSONL)")
    p.add_argument("--out", default=None, help="the HTML file to write (default: FILE with .html)")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("serve", help="serve an environment over the network (an OpenEnv server)",
                       description="Serve a registered environment as an OpenEnv server: one environment per "
                       "WebSocket session (/ws), many at once, plus /health, /schema and /metadata. Any OpenEnv "
                       "client can play it; interplay's is gym.make('interplay/Remote-v0', url='http://HOST:PORT'). "
                       "Needs the openenv extra: pip install 'interplay[openenv]'.")
    p.add_argument("env_id", help="a registered environment id (`interplay list`)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                   "only; 0.0.0.0 for every interface)")
    p.add_argument("--env-kwargs", default=None, help="JSON object of environment constructor kwargs")
    limits = _limit_defaults()
    p.add_argument("--max-sessions", type=int, default=limits.max_sessions,
                   help=f"sessions at once; one more is refused with CAPACITY_REACHED (default {limits.max_sessions})")
    p.add_argument("--idle-timeout", "--session-timeout", type=_seconds, default=limits.idle_timeout,
                   metavar="SECONDS", help="close a session that sends nothing this long; 0: never (default "
                   f"{limits.idle_timeout:g})")
    p.add_argument("--max-message-bytes", type=int, default=limits.max_message_bytes, metavar="BYTES",
                   help=f"close a connection that sends a larger message (default {limits.max_message_bytes}, "
                   f"{limits.max_message_bytes / 2**20:g} MiB)")
    p.add_argument("--step-timeout", type=_seconds, default=limits.step_timeout, metavar="SECONDS",
                   help="a step that takes longer ends its episode as truncated, the reason in info; 0: no limit "
                   f"(default {limits.step_timeout:g})")
    p.add_argument("--no-expert", action="store_true",
                   help="do not answer expert_action queries (an evaluation server agents cannot ask)")
    p.add_argument("--log-level", default="warning", help="uvicorn's log level (default warning)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("study", help="four findings (horizon, coverage, exploration, feedback), each measured "
                       "with seeds and given a verdict",
                       description="Runs the four sections of interplay.study and writes study.md and study.json "
                       "into --out. Every training and evaluation is cached there: a rerun resumes.")
    p.add_argument("--out", default="runs/study")
    p.add_argument("--budget", type=float, default=1.0, help="scales every training's steps and every evaluation's "
                   "tasks (1.0: the full study on a CPU; 0.02: the smallest run; above 2: the GPU's); seeds: 2 "
                   "below 0.5, 3 up to 2, 5 beyond")
    p.add_argument("--workers", type=int, default=1, help="sections run side by side in this many processes, "
                   "one torch thread each (2 on a 2-core machine)")
    p.add_argument("--sections", default=None, help="comma-separated subset of horizon,coverage,exploration,feedback")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("demo", help="the pipeline's codebreaker preset into runs/demo (a few minutes on a CPU)")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(func=cmd_demo)
    return parser


def _stage_class(stage: str) -> type:
    # interplay.training.config imports neither torch nor TRL, so building the parser stays fast.
    from interplay.training.config import GRPOTrainingConfig, ImitationConfig

    if stage == "selfplay":
        from interplay.training.selfplay import SelfPlayConfig

        return SelfPlayConfig
    return ImitationConfig if stage == "sft" else GRPOTrainingConfig


def main(argv: Sequence[str] | None = None) -> int:
    import gymnasium

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":  # only `train` passes flags on (to TRL's config)
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra) if args.command == "train" else args.func(args)
    except (ValueError, TypeError, OSError, RuntimeError, gymnasium.error.Error) as error:
        # Bad input gets one readable line, not a stack trace.
        print(f"interplay {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
