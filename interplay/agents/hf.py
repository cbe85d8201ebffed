"""HFAgent: a transformers causal LM that samples a whole batch at once and keeps KV caches across turns.

Our own sampling loop instead of ``model.generate``: a session holds one KV cache for all live
episodes (a ``ChunkedCache``, a ``DynamicCache`` that grows in chunks instead of copying itself every
step, see ``interplay.agents.kv_cache``), feeds each turn's new tokens (left-padded inside the chunk;
padding in the middle of a row is masked out and ``position_ids = cumsum(attention_mask) - 1`` skips
it), samples token by token, and drops finished episodes with ``DynamicCache.batch_select_indices``.
Re-encoding the history instead would make a rollout cost grow with the square of the turns.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from interplay.agents.base import Agent, AgentError, Reply
from interplay.agents.chat import THINKING_MARKERS, ChatEncoder, Message, generation_stop_ids
from interplay.agents.tokens import SampledReply, TokenSession, pad_batch


def _dropout_active(model: Any) -> bool:
    config = model.config
    rates = [getattr(config, k, 0.0) or 0.0 for k in ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop")]
    rates += [getattr(adapter, "lora_dropout", 0.0) or 0.0 for adapter in getattr(model, "peft_config", {}).values()]
    return model.training and any(float(r) > 0 for r in rates)


def _forward_signature(model: Any) -> inspect.Signature:
    """The signature of the transformers model's own forward: a ``peft.PeftModel`` passes its keyword
    arguments on through ``**kwargs``, which names none of them."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inspect.signature(inner.forward)


class HFAgent(Agent):
    """Samples replies from a Hugging Face causal LM.

    Args:
        model: a loaded model (a ``peft.PeftModel`` samples with its adapter on), or a name for
            ``interplay.models.load`` ("tiny", a path, an HF id; a LoRA adapter directory loads merged into
            its base: the same logits as base + adapter, and faster sampling).
        tokenizer: required with a loaded model; loaded alongside a named one.
        temperature: 0 means greedy. top_p (1.0 = off), top_k (0 = off): nucleus / top-k filtering.
        max_new_tokens: per reply. stop: strings that end a reply (kept in its text) besides the stop ids.
        seed: seeds the sampling generator (None: torch's global RNG).
        device, dtype: for a named model (default: CUDA with bf16 where available, else CPU float32).
        chat_template_kwargs: passed to the chat template, e.g. ``{"enable_thinking": False}`` (Qwen3).
        thinking_budget: reasoning models: after this many thinking tokens, the closing marker
            (``\n</think>\n\n``) is inserted (recorded with ``Reply.token_mask`` 0) and the answer follows.

    A reply ends at any stop id: the tokenizer's eos, the template's end-of-turn id and every id of
    ``model.generation_config.eos_token_id``. The environment gets the answer only (``Reply.text``);
    a thinking part goes to ``Reply.reasoning`` and its ids stay in ``Reply.token_ids``.

    Recorded log-probs are those TRL's GRPO recomputes for its importance ratios:
    ``log_softmax(logits / temperature)`` at the sampled token, before top-k/top-p filtering
    (with temperature 0, the raw ``log_softmax(logits)``). The model is never switched to eval mode
    (TRL reads ``model.training``); sampling runs under ``torch.no_grad()``, and a warning is given
    when the model is in training mode with dropout configured.
    """

    def __init__(
        self,
        model: Any = "tiny",
        tokenizer: Any = None,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_new_tokens: int = 64,
        stop: Sequence[str] = (),
        seed: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        thinking_budget: int | None = None,
    ) -> None:
        if temperature < 0 or not 0 < top_p <= 1 or top_k < 0 or max_new_tokens < 1:
            raise ValueError(
                f"need temperature >= 0, 0 < top_p <= 1, top_k >= 0, max_new_tokens >= 1; got temperature="
                f"{temperature}, top_p={top_p}, top_k={top_k}, max_new_tokens={max_new_tokens}."
            )
        if isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
            raise ValueError(f"stop must be a list of non-empty strings, got {stop!r}.")
        if thinking_budget is not None and (not isinstance(thinking_budget, int) or thinking_budget < 1):
            raise ValueError(f"thinking_budget must be a positive integer (tokens) or None, got {thinking_budget!r}.")
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            from interplay import models

            device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            if dtype is None:
                cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
                dtype = torch.bfloat16 if cuda_bf16 else torch.float32
            name = str(model)
            model, loaded_tokenizer = models.load(name, dtype=dtype)
            model.to(device)
            tokenizer = tokenizer or loaded_tokenizer
        else:
            name = getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "") or "model"
            if tokenizer is None:
                raise ValueError("HFAgent(model=<a loaded model>) also needs tokenizer=...")
        self.model = model
        self.tokenizer = tokenizer
        generation = getattr(model, "generation_config", None)
        self.encoder = ChatEncoder(tokenizer, chat_template_kwargs, stop_ids=generation_stop_ids(generation))
        self.name = name
        self.temperature, self.top_p, self.top_k = float(temperature), float(top_p), int(top_k)
        self.max_new_tokens = int(max_new_tokens)
        self.stop = list(stop)
        # A stop string ends within the last tokens: decode only those each step, not the whole reply.
        # Every token decodes to at least one character, or a byte of one (4 bytes at most per character).
        self.stop_window = 4 * max((len(s) for s in self.stop), default=0) + 1
        self.seed = seed
        self.thinking_budget = thinking_budget
        self.thinking_ids = self._thinking_ids() if thinking_budget is not None else None
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        # Padding is masked out, so any id does; a missing pad token (or one equal to eos) is fine.
        pads = [tokenizer.pad_token_id, getattr(generation, "pad_token_id", None), *sorted(self.encoder.stop_ids)]
        self.pad_id = next(int(i) for i in pads if isinstance(i, int))
        # transformers >= 5.24 renamed `past_key_values` to `cache`; looked up once, not per token.
        self.cache_kwarg = "cache" if "cache" in _forward_signature(model).parameters else "past_key_values"
        self.model_seconds = 0.0  # time spent in forward passes and sampling (benchmarks read it)

    def _thinking_ids(self) -> tuple[int, int, list[int]]:
        """(opening id, closing id, ids fed to close a thinking part) for ``thinking_budget``."""
        markers = self.encoder.thinking
        if markers is None:
            raise ValueError(f"thinking_budget is set, but the chat template of {self.name!r} has no thinking "
                             f"markers (looked for {[b for _, b in THINKING_MARKERS]}).")
        ids = [self.encoder.encode(marker) for marker in markers]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"thinking_budget needs the thinking markers {markers} to be single tokens in the "
                             f"tokenizer of {self.name!r}; they encode as {ids}.")
        return ids[0][0], ids[1][0], self.encoder.encode(f"\n{markers[1]}\n\n")

    def sampling_params(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_new_tokens": self.max_new_tokens,
            "stop": self.stop,
            "seed": self.seed,
            "chat_template_kwargs": self.encoder.chat_template_kwargs,
            "thinking_budget": self.thinking_budget,
        }

    def start(self, n: int) -> HFSession:
        return HFSession(self, n)

    def act(
        self, histories: list[list[Message]], expert_actions: list[str | None] | None = None
    ) -> list[Reply]:
        session = self.start(len(histories))
        replies = session.act(dict(enumerate(histories)))
        return [replies[row] for row in range(len(histories))]

    # ---- sampling -----------------------------------------------------------------------------
    def sample(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled ids and their log-probs (see the class docstring) for a (batch, vocab) logits row."""
        logits = logits.float()
        if self.temperature == 0:
            tokens = logits.argmax(-1)
            return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
        logits = logits / self.temperature
        logprobs = torch.log_softmax(logits, -1)
        filtered = logits
        if self.top_k:
            kth = torch.topk(filtered, min(self.top_k, filtered.shape[-1]), dim=-1).values[:, -1:]
            filtered = filtered.masked_fill(filtered < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(filtered, descending=True)
            cumulative = torch.softmax(sorted_logits, -1).cumsum(-1)
            drop = cumulative - torch.softmax(sorted_logits, -1) >= self.top_p  # keep the top token always
            filtered = filtered.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        tokens = self.draw(torch.softmax(filtered, -1))
        return tokens, logprobs.gather(-1, tokens[:, None])[:, 0]

    def draw(self, probs: torch.Tensor) -> torch.Tensor:
        """One id per row of ``probs`` (batch, vocab), by inverse transform: the first id whose cumulative
        probability exceeds a uniform draw. One random number per row, where ``torch.multinomial`` draws
        one exponential per vocabulary entry (most of a decode step's sampling time with a 49k vocab).
        The cumulative sum is in float64, so ids of probability 0 (filtered out) are never drawn."""
        cdf = probs.double().cumsum_(-1)
        uniform = torch.rand(probs.shape[0], 1, dtype=cdf.dtype, device=cdf.device, generator=self.generator)
        ids = torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True)[:, 0]
        return ids.clamp_(max=probs.shape[-1] - 1)  # a uniform rounded up to the total


class HFSession(TokenSession):
    """KV-cached episodes of an ``HFAgent`` (see the module docstring)."""

    def __init__(self, agent: HFAgent, n: int) -> None:
        super().__init__(agent, n)
        self.cache: Any = None
        self.mask = torch.zeros(n, 0, dtype=torch.long, device=agent.device)
        self.lengths = torch.zeros(n, dtype=torch.long, device=agent.device)  # real tokens per row
        self.unfed: dict[int, list[int]] = {row: [] for row in self.live}  # last sampled ids, not yet cached

    def _forward(self, chunk: list[list[int]]) -> torch.Tensor:
        """Feed one left-padded chunk per live row; return the logits of each row's last position."""
        agent = self.agent
        tokens, chunk_mask, _ = pad_batch(chunk, agent.pad_id, left=True, device=agent.device)
        positions = (self.lengths[:, None] + chunk_mask.cumsum(-1) - 1).clamp(min=0)
        self.mask = torch.cat([self.mask, chunk_mask], dim=1)
        self.lengths = self.lengths + chunk_mask.sum(-1)
        if self.cache is None:
            from interplay.agents.kv_cache import ChunkedCache

            self.cache = ChunkedCache()
        # The cache is updated in place.
        out = agent.model(
            input_ids=tokens,
            attention_mask=self.mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{agent.cache_kwarg: self.cache},
        )
        return out.logits[:, -1]

    @torch.no_grad()
    def _sample(self, contexts: list[list[int]]) -> list[SampledReply]:
        agent = self.agent
        if _dropout_active(agent.model):
            warnings.warn(
                "sampling from a model in training mode with dropout > 0: replies and log-probs are "
                "those of a dropout-perturbed model.",
                RuntimeWarning,
                stacklevel=3,
            )
        started = time.perf_counter()
        logits = self._forward([self.unfed[row] + ids for row, ids in zip(self.live, contexts)])
        replies = [SampledReply(agent.encoder.generation_opens_thinking) for _ in self.live]
        for step in range(agent.max_new_tokens):
            tokens, logprobs = agent.sample(logits)
            # One device-to-host copy per step for both (float64 holds every token id exactly).
            tokens_list, logprobs_list = torch.stack([tokens.double(), logprobs.double()]).tolist()
            feed = [self._advance(reply, int(token), logprob, step) if not reply.finish else []
                    for reply, token, logprob in zip(replies, tokens_list, logprobs_list)]
            if all(reply.finish for reply in replies):
                break
            logits = self._forward(feed)
            feed = [[] for _ in feed]
        self.unfed = {row: ids for row, ids in zip(self.live, feed)}
        agent.model_seconds += time.perf_counter() - started
        return replies

    def _advance(self, reply: SampledReply, token: int, logprob: float, step: int) -> list[int]:
        """Record one sampled token; return the ids to feed next (the token, and any inserted ids)."""
        agent = self.agent
        reply.add([token], [logprob], sampled=True)
        feed = [token]
        if token in agent.encoder.stop_ids:
            reply.finish = "stop"
        elif agent.stop and any(s in agent.tokenizer.decode(reply.ids[-agent.stop_window:]) for s in agent.stop):
            reply.finish = "stop"
        elif step == agent.max_new_tokens - 1:
            reply.finish = "length"
        elif agent.thinking_ids is not None:
            opening, closing, close = agent.thinking_ids
            if token in (opening, closing):
                reply.thinking = token == opening
            elif reply.thinking:
                reply.thought += 1
                if reply.thought >= agent.thinking_budget:
                    reply.add(close, [0.0] * len(close), sampled=False)
                    reply.thinking = False
                    feed += close
        return feed

    def drop(self, rows: Iterable[int]) -> None:
        gone = set(rows)
        keep = [i for i, row in enumerate(self.live) if row not in gone]
        if len(keep) == len(self.live):
            return
        super().drop(gone)
        self.unfed = {row: self.unfed[row] for row in self.live}
        index = torch.tensor(keep, dtype=torch.long, device=self.agent.device)
        self.mask, self.lengths = self.mask[index], self.lengths[index]
        if not keep:
            self.cache = None
        elif self.cache is not None:
            self.cache.batch_select_indices(index)
        if keep and self.mask.shape[1]:
            # Columns no remaining row uses are dead weight in every later attention call.
            first = int(self.mask.any(0).int().argmax())
            if first and self._crop_left(first):
                self.mask = self.mask[:, first:]

    def _crop_left(self, first: int) -> bool:
        layers = getattr(self.cache, "layers", None)
        # Only plain full-attention layers: sliding-window or quantized layers keep other state.
        plain = ("DynamicLayer", "ChunkedLayer")
        if not layers or not all(type(layer).__name__ in plain and layer.keys is not None for layer in layers):
            return False
        for layer in layers:
            layer.keys = layer.keys[:, :, first:]
            layer.values = layer.values[:, :, first:]
        return True


__all__ = ["AgentError", "HFAgent", "HFSession"]
