"""vLLM generation for multi-turn episodes: token ids in, sampled ids and log-probs out.

The thinnest adapters behind ``TokenGenerator`` (``interplay.agents.tokens``); everything multi-turn
(chat-template deltas, closes, reasoning split, trajectories) is the same code that ``HFAgent`` uses.
Each turn a row's whole token sequence is sent again: vLLM's prefix caching makes that cheap.

- ``TRLVLLMGenerator``: TRL's own vLLM generation of a ``GRPOTrainer`` with ``use_vllm=True``
  (``trainer.vllm_generation.generate(prompts, images, num_generations)``; TRL syncs the weights before
  ``rollout_func`` runs). In server mode TRL gathers every process's prompts and slices the answers
  back by position, so every process must send the same number of prompts the same number of times:
  each call pads to the largest count across processes, and ``close()`` keeps answering calls with
  padding until every process's episodes are done.
- ``VLLMGenerator``: a ``vllm.LLM`` for evaluation (``VLLMAgent("vllm-model-id")``).

Not run on hardware in this repository's tests (vLLM cannot be installed on its CPU machines); the
tests drive the whole multi-turn path through ``TokenGenerator`` with a double that follows TRL's
documented contract of ``vllm_generation.generate``.
"""

from __future__ import annotations

from typing import Any

from interplay.agents.base import Agent, Reply
from interplay.agents.chat import ChatEncoder, Message
from interplay.agents.tokens import GeneratorSession


def _sampled_logprobs(completion: list[int], logprobs: list[list[Any]], token_ids: list[list[int]] | None
                      ) -> list[float]:
    """The sampled token's log-prob at each position. TRL gives per position a list of log-probs, ranked,
    with their token ids; the sampled token is among them (first when only it was asked for)."""
    out = []
    for position, (token, candidates) in enumerate(zip(completion, logprobs)):
        index = token_ids[position].index(token) if token_ids is not None and token in token_ids[position] else 0
        value = candidates[index]
        if value is None:  # vLLM's NaN
            raise RuntimeError(f"vLLM returned no log-prob (NaN) for sampled token {token} at position {position}.")
        out.append(float(value))
    return out


class TRLVLLMGenerator:
    """``TokenGenerator`` over ``trainer.vllm_generation`` (colocate or server mode)."""

    def __init__(self, trainer: Any, pad_prompt: list[int]) -> None:
        self.generation = trainer.vllm_generation
        self.accelerator = trainer.accelerator
        self.server = self.generation.mode == "server"
        if not self.server and getattr(self.generation, "tensor_parallel_size", 1) > 1:
            # Colocated tensor parallelism gathers prompts over its group and slices answers by position,
            # which needs the same prompt counts on every rank of the group: not implemented.
            raise ValueError("interplay's multi-turn vLLM rollouts support colocate mode with "
                             "vllm_tensor_parallel_size=1, or server mode; got colocate with tensor parallelism "
                             f"{self.generation.tensor_parallel_size}.")
        self.pad_prompt = list(pad_prompt)  # what a process with fewer live episodes sends in server mode

    def _most_prompts(self, count: int) -> int:
        """The largest prompt count of any process this call (a collective: every process calls it)."""
        import torch

        counts = self.accelerator.gather(torch.tensor([count], device=self.accelerator.device))
        return int(counts.max().item())

    def _generate(self, prompts: list[list[int]]) -> tuple[list[list[int]], list[list[float]]]:
        _, completions, logprobs, token_ids = self.generation.generate(prompts=prompts, images=None,
                                                                       num_generations=1)
        if logprobs is None:
            raise RuntimeError("TRL's vLLM generation returned no log-probs; interplay needs them for GRPO's "
                               "importance ratios (keep GRPOConfig's vLLM logprobs setting at its default).")
        return [list(c) for c in completions], [
            _sampled_logprobs(c, row, ids) for c, row, ids in zip(completions, logprobs, token_ids or [None] * len(logprobs))]

    def generate(self, prompts: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        padded = list(prompts)
        if self.server:
            padded += [self.pad_prompt] * (self._most_prompts(len(prompts)) - len(prompts))
        completions, logprobs = self._generate(padded)
        return list(zip(completions[: len(prompts)], logprobs[: len(prompts)]))

    def close(self) -> None:
        if not self.server:
            return
        while (most := self._most_prompts(0)) > 0:  # other processes still play: answer their calls
            self._generate([self.pad_prompt] * most)


class VLLMGenerator:
    """``TokenGenerator`` over a ``vllm.LLM``, with token-id prompts."""

    def __init__(self, llm: Any, *, temperature: float, top_p: float, top_k: int, max_new_tokens: int,
                 stop_ids: list[int], seed: int | None) -> None:
        from vllm import SamplingParams

        self.llm = llm
        self.params = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k if top_k > 0 else -1,
                                     max_tokens=max_new_tokens, logprobs=0, stop_token_ids=stop_ids,
                                     skip_special_tokens=False)  # seeded by LLM(seed=...): a per-request
        # seed would give every sample of one prompt (a GRPO group, pass@k samples) the same completion.

    def generate(self, prompts: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        from vllm.inputs import TokensPrompt

        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], self.params, use_tqdm=False)
        results = []
        for output in outputs:
            sample = output.outputs[0]
            ids = list(sample.token_ids)
            results.append((ids, [float(step[token].logprob) for step, token in zip(sample.logprobs, ids)]))
        return results

    def close(self) -> None:
        return None


class VLLMAgent(Agent):
    """A model agent whose tokens a ``TokenGenerator`` samples (vLLM); multi-turn as ``HFAgent``.

    Args:
        model: an HF id or checkpoint path for ``vllm.LLM`` (ignored when ``generator`` is given).
        tokenizer: the model's tokenizer (default: loaded with ``interplay.models.load_tokenizer``).
        generator: a ``TokenGenerator`` (e.g. ``TRLVLLMGenerator(trainer, ...)``); default: a ``vllm.LLM``.
        temperature, top_p, top_k, max_new_tokens, seed: sampling (for the default generator).
        chat_template_kwargs: passed to the chat template (e.g. ``{"enable_thinking": False}``).
        stop_ids: ids that end a reply besides the tokenizer's eos and the template's end of turn.
        llm_kwargs: passed to ``vllm.LLM`` (e.g. ``gpu_memory_utilization``).
    """

    def __init__(self, model: str | None = None, tokenizer: Any = None, *, generator: Any = None,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, max_new_tokens: int = 64,
                 seed: int | None = None, chat_template_kwargs: dict[str, Any] | None = None,
                 stop_ids: list[int] | tuple[int, ...] = (), llm_kwargs: dict[str, Any] | None = None) -> None:
        if generator is None and model is None:
            raise ValueError("VLLMAgent needs a model (an HF id or path for vllm.LLM) or a generator.")
        if tokenizer is None:
            if model is None:
                raise ValueError("VLLMAgent(generator=...) also needs tokenizer=...")
            from interplay import models

            tokenizer = models.load_tokenizer(model)
        self.tokenizer = tokenizer
        self.encoder = ChatEncoder(tokenizer, chat_template_kwargs, stop_ids=stop_ids)
        self.name = model or getattr(tokenizer, "name_or_path", "vllm")
        self.temperature, self.top_p, self.top_k = float(temperature), float(top_p), int(top_k)
        self.max_new_tokens, self.seed = int(max_new_tokens), seed
        if generator is None:
            try:
                from vllm import LLM
            except ImportError as error:
                raise ImportError("VLLMAgent needs vLLM: pip install 'interplay[vllm]' (a CUDA machine).") from error
            generator = VLLMGenerator(LLM(model, seed=seed or 0, **(llm_kwargs or {})), temperature=temperature,
                                      top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens,
                                      stop_ids=sorted(self.encoder.stop_ids), seed=seed)
        self.generator = generator

    def start(self, n: int) -> GeneratorSession:
        return GeneratorSession(self, n)

    def act(self, histories: list[list[Message]], expert_actions: list[str | None] | None = None) -> list[Reply]:
        session = self.start(len(histories))
        replies = session.act(dict(enumerate(histories)))
        session.drop(range(len(histories)))
        session.close()
        return [replies[row] for row in range(len(histories))]

    def sampling_params(self) -> dict[str, Any]:
        return {"backend": type(self.generator).__name__, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": self.top_k, "max_new_tokens": self.max_new_tokens, "seed": self.seed,
                "chat_template_kwargs": self.encoder.chat_template_kwargs}


__all__ = ["TRLVLLMGenerator", "VLLMAgent", "VLLMGenerator"]
