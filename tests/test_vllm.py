"""vLLM generation through TRL, driven on CPU with a double that follows TRL 1.16's documented contract of
``trainer.vllm_generation.generate(prompts, images, num_generations) -> (prompt_ids, completion_ids,
logprobs, logprob_token_ids)`` (token ids in; per token, a list of log-probs whose first is the sampled
token's), sampling with the real tiny model. vLLM itself never runs here."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from trl import GRPOConfig

from interplay import models
from interplay.agents.tokens import GeneratorSession
from interplay.agents.vllm import TRLVLLMGenerator, VLLMAgent
from interplay.evaluation import evaluate
from interplay.rollout import EnvSpec, rollout
from interplay.seeds import task_key
from interplay.training.grpo import GRPOTrainingConfig, grpo_defaults, vllm_reply_args
from interplay.training.grpo_rollout import make_rollout_func

CODE = "interplay/CodeBreaker-v0"


class FakeVLLMGeneration:
    """TRL's ``VLLMGeneration`` as documented: samples ``max_completion_length`` tokens at most per prompt,
    stops at ``generation_kwargs["stop_token_ids"]``, returns per-token top-1 log-probs. Records its calls."""

    def __init__(self, model, *, mode="colocate", temperature=1.0, max_completion_length=6, stop_token_ids=(),
                 seed=0):
        self.model, self.mode, self.temperature = model, mode, temperature
        self.max_completion_length = max_completion_length
        self.generation_kwargs = {"stop_token_ids": list(stop_token_ids)}
        self.generator = torch.Generator().manual_seed(seed)
        self.calls: list[list[list[int]]] = []

    @torch.no_grad()
    def generate(self, prompts, images, num_generations, profiler=None):
        assert images is None and num_generations == 1
        self.calls.append([list(p) for p in prompts])
        completions, logprobs = [], []
        for prompt in prompts:
            ids, lps = [], []
            for _ in range(self.max_completion_length):
                logits = self.model(input_ids=torch.tensor([prompt + ids])).logits[0, -1].float() / self.temperature
                token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=self.generator))
                ids.append(token)
                lps.append([float(torch.log_softmax(logits, -1)[token])])
                if token in self.generation_kwargs["stop_token_ids"]:
                    break
            completions.append(ids)
            logprobs.append(lps)
        return [list(p) for p in prompts], completions, logprobs, [[[t] for t in c] for c in completions]


@pytest.fixture(scope="module")
def tiny():
    return models.load("tiny")


def fake_trainer(model, tokenizer, generation, accelerator=None):
    return SimpleNamespace(vllm_generation=generation, accelerator=accelerator or Accelerator(cpu=True),
                           args=SimpleNamespace(use_vllm=True, temperature=1.0, top_p=1.0, top_k=0), model=model,
                           processing_class=tokenizer)


def test_grpo_rollout_func_plays_whole_episodes_through_trls_vllm(tiny):
    model, tokenizer = tiny
    config = GRPOTrainingConfig(env=CODE, max_new_tokens=6, max_turns=3)
    generation = FakeVLLMGeneration(model, stop_token_ids=[tokenizer.eos_token_id])
    prompts = [task_key(CODE, 5)] * 2 + [task_key(CODE, 6)] * 2
    out = make_rollout_func(config)(prompts, fake_trainer(model, tokenizer, generation))
    assert len(out["completion_ids"]) == 4 and max(out["turns"]) >= 2
    # One generate call per turn, with every live episode's whole sequence; each call's prompt of an
    # episode extends what it was sent and sampled the turn before (prefix caching keeps that cheap).
    assert len(generation.calls) == max(out["turns"])
    for before, after in zip(generation.calls, generation.calls[1:]):
        assert len(after) <= len(before) and all(any(a[: len(b)] == b for b in before) for a in after)
    for prompt, completion, mask, logprobs in zip(out["prompt_ids"], out["completion_ids"], out["env_mask"],
                                                   out["logprobs"]):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            forced = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        forced = forced.gather(-1, ids[0, 1:, None])[:, 0][len(prompt) - 1:]
        agent = torch.tensor(mask, dtype=torch.bool)
        assert (forced[agent] - torch.tensor(logprobs)[agent]).abs().max() < 1e-4
        assert completion[-1] == tokenizer.eos_token_id  # TRL reads a sequence without eos as truncated


class TwoProcesses:
    """An accelerator whose gather adds a second process with the given live counts per call."""

    device = torch.device("cpu")

    def __init__(self, other_counts):
        self.other = list(other_counts)
        self.seen: list[int] = []

    def gather(self, tensor):
        self.seen.append(int(tensor[0]))
        return torch.tensor([int(tensor[0]), self.other.pop(0) if self.other else 0])


def test_server_mode_sends_the_same_number_of_prompts_from_every_process(tiny):
    model, tokenizer = tiny
    generation = FakeVLLMGeneration(model, mode="server", max_completion_length=3,
                                    stop_token_ids=[tokenizer.eos_token_id])
    accelerator = TwoProcesses(other_counts=[4, 4, 3, 3, 1])
    generator = TRLVLLMGenerator(fake_trainer(model, tokenizer, generation, accelerator), pad_prompt=[0])
    agent = VLLMAgent(tokenizer=tokenizer, generator=generator)
    played = rollout([EnvSpec(CODE, seed=s) for s in (1, 2)], agent, max_turns=2)
    assert all(t.turns == 2 for t in played)
    # Two turns with 2 local episodes, padded to the other process's 4; then, locally done, the session
    # answers the other process's calls (3, 3, 1 prompts) until no process has episodes left.
    assert [len(call) for call in generation.calls] == [4, 4, 3, 3, 1]
    assert accelerator.seen == [2, 2, 0, 0, 0, 0]


def test_vllm_agent_evaluates_with_any_token_generator(tiny):
    model, tokenizer = tiny
    generation = FakeVLLMGeneration(model, stop_token_ids=[tokenizer.eos_token_id])
    agent = VLLMAgent(tokenizer=tokenizer, generator=TRLVLLMGenerator(fake_trainer(model, tokenizer, generation),
                                                                       pad_prompt=[0]))
    assert isinstance(agent.start(1), GeneratorSession)
    result = evaluate(CODE, agent, 3, samples=2, max_turns=2, progress=False)
    assert result["n_episodes"] == 6 and "2" in result["pass_at_k"]
    with pytest.raises(ValueError, match="tokenizer"):
        VLLMAgent(generator=generation)


def test_vllm_args_stop_at_the_end_of_turn_and_after_max_new_tokens(tiny):
    _, tokenizer = tiny
    args = GRPOConfig(output_dir="unused", **grpo_defaults(generation_kwargs={"stop_token_ids": [7]}))
    replied = vllm_reply_args(GRPOTrainingConfig(max_new_tokens=9), args, tokenizer)
    assert replied.max_completion_length == 9 and replied.generation_kwargs["stop_token_ids"] == sorted(
        {7, tokenizer.eos_token_id})
    assert args.generation_kwargs == {"stop_token_ids": [7]} and args.max_completion_length != 9  # left alone
    with pytest.raises(ValueError, match="thinking_budget"):
        vllm_reply_args(GRPOTrainingConfig(thinking_budget=8), args, tokenizer)


def test_the_sampled_tokens_log_prob_is_found_among_ranked_candidates():
    from interplay.agents.vllm import _sampled_logprobs

    # With logprobs=N TRL gives ranked candidates; the sampled token need not be the first.
    assert _sampled_logprobs([5, 7], [[-0.1, -2.0], [-0.5, -0.7]], [[3, 5], [7, 9]]) == [-2.0, -0.5]
    assert _sampled_logprobs([5], [[-0.3]], None) == [-0.3]
    with pytest.raises(RuntimeError, match="NaN"):
        _sampled_logprobs([5], [[None]], [[5]])
