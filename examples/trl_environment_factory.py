"""GRPO on any interplay environment with TRL's own multi-turn loop: GRPOTrainer(environment_factory=...).

TRL plays each episode as tool calls: the model calls the environment's tool (``move`` in a maze,
``guess`` in CodeBreaker, ``answer`` in feedback tasks, ``act`` otherwise) with its reply, and the
environment's answer comes back as the tool response, until the model answers without a tool call or
``--max-turns`` calls. TRL brings the rest: vLLM generation (``--use-vllm``), several GPUs
(``accelerate launch``). The reward is the environment's own (``get_reward``); success rate, turns and
invalid replies are logged as ``episode/...``. See ``interplay.integrations.trl``.

    python examples/trl_environment_factory.py --model Qwen/Qwen3-0.6B --env interplay/Maze-v0 --env-kwargs '{"size": 4}'
    accelerate launch --num_processes 4 examples/trl_environment_factory.py --model Qwen/Qwen3-1.7B --use-vllm

The model needs a chat template with tool calls that TRL can parse (Qwen2.5/Qwen3, Llama 3.1/3.2, GPT-OSS,
...). ``--model tiny-qwen3`` is an offline smoke run: the tiny random-init Qwen3 of the test fixtures, which
does not call tools until taught to (tests/test_trl_environment_factory.py shows how); with it the run
only shows the mechanics.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from trl import GRPOConfig, GRPOTrainer

from interplay.integrations.trl import environment_factory, episode_metrics, task_dataset
from interplay.training.common import with_bf16_where_supported

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tokenizers"


def load(model: str):
    """(model, tokenizer): a hub id or path as is, or the fixtures' tiny Qwen3 for ``tiny-qwen3``."""
    if model != "tiny-qwen3":
        return model, None  # TRL loads both
    from transformers import AutoTokenizer
    from trl.chat_template_utils import qwen3_chat_template

    from interplay.models.families import family_checkpoint

    path = family_checkpoint("qwen3", FIXTURES)
    tokenizer = AutoTokenizer.from_pretrained(path)
    # The fixture has the template of Qwen3's first release; TRL parses tool calls of the current hub one.
    tokenizer.chat_template = qwen3_chat_template
    return str(path), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Qwen/Qwen3-0.6B", help="hub id or path, or tiny-qwen3 (offline)")
    parser.add_argument("--env", default="interplay/Maze-v0")
    parser.add_argument("--env-kwargs", default="{}", help='JSON constructor kwargs, e.g. \'{"size": 4}\'')
    parser.add_argument("--tasks", type=int, default=512, help="training tasks (seeds 0..tasks-1)")
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--num-generations", type=int, default=8, help="episodes per task (a GRPO group)")
    parser.add_argument("--batch-size", type=int, default=16, help="episodes per device per step")
    parser.add_argument("--max-turns", type=int, default=16, help="tool calls per episode (max_tool_calling_iterations)")
    parser.add_argument("--max-completion-length", type=int, default=2048, help="tokens per episode, tool responses included")
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--thinking", action="store_true", help="let Qwen3-style templates think (longer turns)")
    parser.add_argument("--use-vllm", action="store_true", help="generate with vLLM (colocated)")
    parser.add_argument("--output-dir", default="runs/trl-environment-factory")
    args = parser.parse_args()

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is experimental in TRL
    Env = environment_factory(args.env, **json.loads(args.env_kwargs))
    model, tokenizer = load(args.model)
    config = GRPOConfig(**with_bf16_where_supported(dict(  # TRL's default bf16=True fails on a CPU
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_tool_calling_iterations=args.max_turns,
        max_completion_length=args.max_completion_length,
        chat_template_kwargs={"enable_thinking": args.thinking},  # templates without the switch ignore it
        learning_rate=args.learning_rate,
        beta=0.0,
        logging_steps=1,
        report_to="none",
        use_vllm=args.use_vllm,
        vllm_mode="colocate",
    )))
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[episode_metrics],  # logs only; the reward is the environment's (Env.get_reward)
        args=config,
        train_dataset=task_dataset(Env, args.tasks),
        processing_class=tokenizer,
        environment_factory=Env,
    )
    trainer.train()
    trainer.save_model(args.output_dir)
    print(f"saved to {args.output_dir}")


if __name__ == "__main__":
    main()
