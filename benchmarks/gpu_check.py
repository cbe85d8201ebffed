"""The GPU check: one prepared script for a lent GPU machine (target: under 8 minutes on one GPU).

On a random-init model of realistic shape (Qwen2.5-0.5B's: 24 layers, hidden 896, bf16) with the real
Qwen2.5 tokenizer and chat template (``tests/fixtures/tokenizers``), it measures:

1. greedy rollout replies against ``model.generate``, token for token (fraction of replies equal);
2. recorded log-probs against a teacher-forced forward, in bf16 (max and mean absolute error);
3. a multi-turn rollout of ``--episodes`` episodes: episodes/s, sampled tokens/s, the same turns through
   ``model.generate``, and the decode step against the memory-bandwidth bound (bytes of weights and KV
   cache read per step / ``--bandwidth``);
4. one SFT step (the whole run: expert data, the step, a held-out score) and ``--grpo-steps`` multi-turn
   GRPO steps: seconds per step in rollout and in the rest (TRL's forward/backward and update), peak memory;
5. the ``tiny-test`` pipeline preset end to end.

It prints a table, then the ratios on its last line. ``--smoke`` runs the same code at toy scale on any
machine (CPU included), to check the script before spending GPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from rollout_throughput import generate_seconds, turn_contexts  # noqa: E402

from interplay import models  # noqa: E402
from interplay.agents import HFAgent  # noqa: E402
from interplay.models.families import family_checkpoint  # noqa: E402
from interplay.rollout import EnvSpec, rollout  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "tokenizers"
ENV = "interplay/CodeBreaker-v0"
#: Qwen2.5-0.5B's shape (the issue's "about 0.5B parameters, Qwen2-like"), and a toy one for --smoke.
SHAPES = {
    "real": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864),
    "smoke": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128),
}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_checkpoint(shape: str, dtype: torch.dtype, out: Path) -> Path:
    """A random-init Qwen2 of ``shape`` with the real Qwen2.5 tokenizer, saved as a checkpoint."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = models.load_tokenizer(family_checkpoint("qwen2_5", FIXTURES))
    config = Qwen2Config(vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True,
                         rope_theta=1e6, use_sliding_window=False, bos_token_id=151643, eos_token_id=[151645, 151643],
                         pad_token_id=151643, dtype=str(dtype).removeprefix("torch."), **SHAPES[shape])
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(dtype)
    model.generation_config = GenerationConfig(bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def check_greedy_and_logprobs(agent: HFAgent, sampler: HFAgent) -> dict[str, float]:
    """Greedy replies vs ``generate``; sampled log-probs vs a teacher-forced forward."""
    model = agent.model
    played = rollout([EnvSpec(ENV, seed=s) for s in range(8)], agent, max_turns=2)
    equal = total = 0
    for t in played:
        ids = t.prompt_ids + t.completion_ids
        mask = [0] * len(t.prompt_ids) + t.agent_mask
        starts = [i for i in range(len(ids)) if mask[i] and not mask[i - 1]]
        for start in starts:
            end = next((i for i in range(start, len(ids)) if not mask[i]), len(ids))
            prefix = torch.tensor([ids[:start]], device=agent.device)
            out = model.generate(prefix, attention_mask=torch.ones_like(prefix), do_sample=False,
                                 max_new_tokens=agent.max_new_tokens, eos_token_id=sorted(agent.encoder.stop_ids),
                                 pad_token_id=agent.pad_id)
            equal += out[0, prefix.shape[1]:].tolist()[: end - start] == ids[start:end]
            total += 1
    errors = []
    for t in rollout([EnvSpec(ENV, seed=s) for s in range(8)], sampler, max_turns=2):
        ids = torch.tensor([t.prompt_ids + t.completion_ids], device=sampler.device)
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        forced = logprobs.gather(-1, ids[0, 1:, None])[:, 0][len(t.prompt_ids) - 1:].cpu()
        agent_tokens = torch.tensor(t.agent_mask, dtype=torch.bool)
        errors.append((forced[agent_tokens] - torch.tensor(t.logprobs)[agent_tokens]).abs())
    error = torch.cat(errors)
    return {"greedy_equal_generate": equal / max(total, 1), "logprob_max_abs_err": float(error.max()),
            "logprob_mean_abs_err": float(error.mean())}


def measure_rollout(agent: HFAgent, episodes: int, bandwidth: float) -> dict[str, float]:
    rollout([EnvSpec(ENV, seed=0)], agent, max_turns=2)  # warm-up
    agent.model_seconds = 0.0
    sync()
    started = time.perf_counter()
    played = rollout([EnvSpec(ENV, seed=s) for s in range(episodes)], agent, max_turns=4)
    sync()
    wall = time.perf_counter() - started
    sampled = sum(sum(t.agent_mask) for t in played)
    turns = turn_contexts(played)
    generate = generate_seconds(agent, turns)
    steps = len(turns) * agent.max_new_tokens  # decode steps, at most
    weight_bytes = sum(p.numel() * p.element_size() for p in agent.model.parameters())
    config = agent.model.config
    kv_per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * (
        config.hidden_size // config.num_attention_heads) * 2
    mean_context = sum(len(t.prompt_ids) + len(t.completion_ids) for t in played) / len(played)
    bound = (weight_bytes + episodes * mean_context / 2 * kv_per_token) / bandwidth
    return {"episodes_per_s": episodes / wall, "sampled_tokens_per_s": sampled / wall, "rollout_s": wall,
            "generate_same_turns_s": generate, "decode_step_ms": 1000 * agent.model_seconds / steps,
            "decode_bound_ms": 1000 * bound}


def measure_training(checkpoint: Path, out: Path, grpo_steps: int, smoke: bool) -> dict[str, float]:
    from trl import GRPOConfig, SFTConfig

    from interplay.training import grpo
    from interplay.training.config import GRPOTrainingConfig, ImitationConfig
    from interplay.training.imitation import sft_defaults, train_imitation

    batch = 4 if smoke else 32
    peak = torch.cuda.reset_peak_memory_stats if torch.cuda.is_available() else (lambda: None)
    peak()
    sft = train_imitation(ImitationConfig(env=ENV, model=str(checkpoint), episodes=batch, eval_episodes=4,
                                          max_new_tokens=8, max_turns=4),
                          SFTConfig(output_dir=str(out / "sft"), **sft_defaults(max_steps=1,
                                    per_device_train_batch_size=batch, save_strategy="no", disable_tqdm=True)),
                          progress=False)
    sft_memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    rollout_seconds = [0.0]
    make = grpo.make_rollout_func

    def timed(config):  # the rollout's share of each GRPO step
        inner = make(config)

        def rollout_func(prompts, trainer):
            sync()
            started = time.perf_counter()
            result = inner(prompts, trainer)
            sync()
            rollout_seconds[0] += time.perf_counter() - started
            return result

        return rollout_func

    grpo.make_rollout_func = timed
    peak()
    try:
        result = grpo.train_grpo(GRPOTrainingConfig(env=ENV, model=str(out / "sft"), max_new_tokens=8, max_turns=4,
                                                    eval_episodes=4),
                                 GRPOConfig(output_dir=str(out / "grpo"), **grpo.grpo_defaults(
                                     max_steps=grpo_steps, per_device_train_batch_size=batch, num_generations=4,
                                     save_strategy="no", disable_tqdm=True, logging_steps=1)))
    finally:
        grpo.make_rollout_func = make
    step_times = [entry["step_time"] for entry in result.log_history if "step_time" in entry]
    rollout_per_step = rollout_seconds[0] / grpo_steps
    return {"sft_run_s": sft.seconds, "sft_peak_gib": sft_memory, "grpo_steps": grpo_steps,
            "grpo_step_s": sum(step_times) / len(step_times), "grpo_rollout_s_per_step": rollout_per_step,
            "grpo_forward_backward_s_per_step": sum(step_times) / len(step_times) - rollout_per_step,
            "grpo_peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0}


def measure_pipeline(out: Path) -> dict[str, float]:
    from interplay.pipeline import get_preset, run_pipeline

    started = time.perf_counter()
    run_pipeline(get_preset("tiny-test"), out / "pipeline", progress=False)
    return {"tiny_test_pipeline_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy sizes, any device: check the script itself")
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--bandwidth", type=float, default=4.8e12, help="bytes/s of the card (H200: 4.8e12)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda and not args.smoke else torch.float32
    episodes = 8 if args.smoke else args.episodes
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        checkpoint = build_checkpoint("smoke" if args.smoke else "real", dtype, out / "model")
        model, tokenizer = models.load(checkpoint, dtype=dtype)
        model.to("cuda" if cuda else "cpu")
        figures["parameters_m"] = sum(p.numel() for p in model.parameters()) / 1e6
        greedy = HFAgent(model, tokenizer, temperature=0.0, max_new_tokens=8)
        sampler = HFAgent(model, tokenizer, temperature=1.0, max_new_tokens=8, seed=0)
        for name, run in (("exactness", lambda: check_greedy_and_logprobs(greedy, sampler)),
                          ("rollout", lambda: measure_rollout(HFAgent(model, tokenizer, max_new_tokens=8, seed=0),
                                                              episodes, args.bandwidth)),
                          ("training", lambda: measure_training(checkpoint, out, args.grpo_steps, args.smoke)),
                          ("pipeline", lambda: measure_pipeline(out))):
            started = time.perf_counter()
            figures.update(run())
            print(f"[{name}: {time.perf_counter() - started:.1f} s]", flush=True)
    device = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"\n| figure ({device}, {dtype}) | value |\n|---|---|")
    for key, value in figures.items():
        print(f"| {key} | {value:.4g} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, **figures}, indent=1))
    print(f"rollout_over_generate={figures['rollout_s'] / figures['generate_same_turns_s']:.3f} "
          f"decode_over_bandwidth_bound={figures['decode_step_ms'] / figures['decode_bound_ms']:.2f} "
          f"greedy_equal_generate={figures['greedy_equal_generate']:.3f} "
          f"logprob_max_abs_err={figures['logprob_max_abs_err']:.2e}")


if __name__ == "__main__":
    main()
