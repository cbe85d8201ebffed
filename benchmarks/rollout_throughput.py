"""Rollout cost against plain ``model.generate`` on the same turns.

Plays a 64-episode multi-turn batched rollout (KV caches kept across turns), then replays its turns
with ``model.generate``: for each turn index, one left-padded batch of every live episode's context
(the exact ids the rollout recorded before that reply), generating as many tokens as the longest
reply of that batch. That is what a rollout built on ``generate`` would cost for the same sampled
tokens, without environments. Also prints the time spent inside the rollout's own sampler.

The last line is ``rollout_over_generate=<ratio>`` (target < 1.15; below 1 means the KV cache kept
across turns saves more than environments, templating and bookkeeping cost).

With ``--batch-sizes`` (e.g. ``--model smollm2-135m --batch-sizes 1,8,32,64``) it measures the sampler
alone instead: per batch size, ``--turns`` chat turns of exactly ``--new-tokens`` sampled tokens per row
(stop ids disabled) through one ``HFSession``, against ``model.generate`` with the same sampling
settings on the same contexts (each turn's whole history, left-padded). It also measures this CPU's
memory bandwidth and prints the bound it sets: the bytes a decode step reads (weights and KV cache)
over the bandwidth. The last line is then ``sampler_over_generate_min_batch8=<ratio>``: the lowest
tokens/s ratio (sampler over generate) at batch 8 or more (target >= 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's interplay, not an installed one

import torch  # noqa: E402

from interplay.agents import HFAgent  # noqa: E402
from interplay.rollout import EnvSpec, Trajectory, rollout  # noqa: E402


def turn_contexts(trajectories: list[Trajectory]) -> list[list[tuple[list[int], int]]]:
    """Per turn index: (context ids before the reply, reply length) of every episode that replied."""
    turns: list[list[tuple[list[int], int]]] = []
    for t in trajectories:
        ids, mask = t.prompt_ids + t.completion_ids, [0] * len(t.prompt_ids) + t.agent_mask
        index, i = 0, 0
        while i < len(ids):
            if mask[i]:
                start = i
                while i < len(ids) and mask[i]:
                    i += 1
                if len(turns) <= index:
                    turns.append([])
                turns[index].append((ids[:start], i - start))
                index += 1
            else:
                i += 1
    return turns


def generate_seconds(agent: HFAgent, turns: list[list[tuple[list[int], int]]]) -> float:
    model, pad = agent.model, agent.tokenizer.pad_token_id
    total = 0.0
    for batch in turns:
        width = max(len(ids) for ids, _ in batch)
        new = max(n for _, n in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids, _ in batch], device=agent.device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in batch], device=agent.device)
        started = time.perf_counter()
        with torch.no_grad():
            model.generate(input_ids=input_ids, attention_mask=attention, do_sample=True, max_new_tokens=new,
                           min_new_tokens=new, pad_token_id=pad)
        total += time.perf_counter() - started
    return total


def batch_messages(n: int) -> list[list[dict[str, str]]]:
    """``n`` first-turn chats of different lengths (so both samplers left-pad)."""
    system = {"role": "system", "content": "You are solving a maze. Answer with one move: up, down, left or right."}
    return [[system, {"role": "user", "content": f"Maze {i}: " + "the wall is to the north. " * (1 + i % 5)
                      + "Which way do you go?"}] for i in range(n)]


FOLLOW_UP = [{"role": "user", "content": "You hit a wall. Try another direction."}]


def clock() -> float:
    """CPU seconds of this process: with one thread, what a turn costs, less disturbed than wall time by
    other jobs on a shared machine."""
    return time.process_time()


def generate_turn(agent: HFAgent, contexts: list[list[int]], new_tokens: int) -> None:
    """``model.generate`` sampling ``new_tokens`` per row from left-padded ``contexts``, as the agent samples."""
    width, pad = max(len(ids) for ids in contexts), agent.pad_id
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in contexts], device=agent.device)
    attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in contexts], device=agent.device)
    with torch.no_grad():
        agent.model.generate(input_ids=input_ids, attention_mask=attention, do_sample=True, temperature=1.0,
                             top_k=0, top_p=1.0, use_cache=True, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, pad_token_id=pad)


def compare_turns(agent: HFAgent, n: int, turns: int) -> tuple[list[float], list[float], list[list[int]]]:
    """CPU seconds per turn of one ``HFSession`` playing ``n`` rows and of ``generate`` on each turn's whole
    contexts, turn by turn (so both see the same machine), and the last turn's contexts."""
    session = agent.start(n)
    histories: list[list[int]] = [[] for _ in range(n)]
    sampled, generated = [], []
    for turn in range(turns):
        new = dict(enumerate(batch_messages(n))) if turn == 0 else {row: FOLLOW_UP for row in range(n)}
        started = clock()
        replies = session.act(new)
        sampled.append(clock() - started)
        contexts = [histories[row] + replies[row].context_ids for row in range(n)]
        started = clock()
        generate_turn(agent, contexts, agent.max_new_tokens)
        generated.append(clock() - started)
        histories = [contexts[row] + replies[row].token_ids for row in range(n)]
    return sampled, generated, contexts


def bandwidth_gb_s(megabytes: int = 512, repeats: int = 5) -> float:
    """This CPU's read bandwidth as torch sees it (one thread): the best of ``repeats`` sums of a large tensor."""
    data = torch.ones(megabytes * 2**20 // 4)
    best = float("inf")
    for _ in range(repeats):
        started = clock()
        data.sum()
        best = min(best, clock() - started)
    return data.numel() * 4 / best / 1e9


def step_bytes(model, batch: int, length: int) -> int:
    """Bytes one decode step reads at least: every weight once (tied ones once) and every row's KV cache."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * model.dtype.itemsize
    return weights + batch * length * kv_per_token


def sampler_benchmark(args: argparse.Namespace) -> None:
    agent = HFAgent(args.model, seed=0, max_new_tokens=args.new_tokens)
    agent.encoder.stop_ids = frozenset()  # every row samples exactly --new-tokens per turn, as generate does
    compare_turns(agent, 2, 1)  # warm-up
    bandwidth = bandwidth_gb_s()
    print(f"{args.model} on {agent.device}, {torch.get_num_threads()} thread(s); {args.turns} turn(s) of "
          f"{args.new_tokens} new tokens per row; tokens per CPU second; memory bandwidth {bandwidth:.1f} GB/s")
    print("batch | sampler tok/s | generate tok/s | ratio | turn 1 ratio | length | bytes/step | bound s/step "
          "| bound tok/s")
    ratios = {}
    for n in args.batch_sizes:
        sampled, generated, contexts = compare_turns(agent, n, args.turns)
        tokens = n * args.new_tokens * args.turns
        ratios[n] = sum(generated) / sum(sampled)
        # The last turn's mid-reply length: what the average decode step of the longest turn attends to.
        length = max(len(ids) for ids in contexts) + args.new_tokens // 2
        step = step_bytes(agent.model, n, length)
        bound = step / (bandwidth * 1e9)
        print(f"{n:5d} | {tokens / sum(sampled):13.1f} | {tokens / sum(generated):14.1f} | {ratios[n]:5.2f} | "
              f"{generated[0] / sampled[0]:12.2f} | {length:6d} | {step / 1e6:7.0f} MB | {bound:12.4f} | "
              f"{n / bound:11.0f}")
    large = [r for n, r in ratios.items() if n >= 8] or list(ratios.values())
    print(f"sampler_over_generate_min_batch8={min(large):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--env", default="interplay/Maze-v0")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--batch-sizes", type=lambda s: [int(n) for n in s.split(",")],
                        help="measure the sampler against generate at these batch sizes, e.g. 1,8,32,64")
    parser.add_argument("--new-tokens", type=int, default=32, help="with --batch-sizes: tokens per row per turn")
    parser.add_argument("--turns", type=int, default=2, help="with --batch-sizes: chat turns per batch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.batch_sizes:
        sampler_benchmark(args)
        return

    agent = HFAgent(args.model, seed=0, max_new_tokens=args.max_new_tokens)
    rollout(EnvSpec(args.env, {}, 0), agent, max_turns=2)  # warm-up
    agent.model_seconds = 0.0
    started = time.perf_counter()
    trajectories = rollout(EnvSpec(args.env), agent, seeds=range(args.episodes), max_turns=args.max_turns)
    wall = time.perf_counter() - started
    turns = turn_contexts(trajectories)
    generate = generate_seconds(agent, turns)
    sampled = sum(sum(t.agent_mask) for t in trajectories)
    print(f"{args.episodes} episodes, {sum(len(b) for b in turns)} turns, {sampled} sampled tokens on {agent.device}")
    print(f"rollout {wall:.2f} s ({args.episodes / wall:.1f} episodes/s); inside its sampler {agent.model_seconds:.2f} s")
    print(f"model.generate on the same turns {generate:.2f} s")
    print(f"rollout_over_sampler={wall / agent.model_seconds:.3f}")
    print(f"rollout_over_generate={wall / generate:.3f}")


if __name__ == "__main__":
    main()
