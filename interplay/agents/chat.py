"""Token ids of a growing chat, for any chat template: token in, token out.

A multi-turn episode is one token sequence, built only by appending:

- the **prompt**: the first messages rendered with the generation prompt, tokenized once;
- each **reply**: the ids the model sampled, as they are (ending in a stop id when it stopped);
- the **close** of a reply: the template's own end-of-turn ids after the reply inside a conversation
  (e.g. ``<|im_end|>`` ``\\n``), less what the model already sampled up to its end-of-turn id;
- each **delta**: the ids of new environment messages plus the generation prompt.

Nothing is re-rendered or re-tokenized after the fact, so the ids trained on are the ids the model
was fed and sampled. The delta of new messages does not depend on how the earlier history would
re-render: it is cut out of a fixed *reference conversation* (``[system] + user + assistant``, then
the new messages), at the token where the new messages start, from a tokenization of the whole
reference text (so a token that straddles the join, like SentencePiece's ``▁[``, is tokenized as in
context). That works for templates that drop earlier reasoning (Qwen3), ``trim`` content (Llama 3,
Gemma), inject default system prompts or dates (Qwen2.5, Llama 3.1), fold the system prompt into
the first user turn (Gemma) or reject a system role (Mistral v0.1; interplay then folds it itself).

Closes are learned from the template, at the end of the reference conversation and inside a longer
one. Some templates close a turn differently at the end: gpt-oss ends a conversation with
``<|return|>`` and a turn inside it with ``<|end|>``; Phi-3.5 adds eos after ``<|end|>\\n``. A reply
stops at either end-of-turn id, and the id sampled stands: after it comes the rest of the close used
inside a conversation. So a gpt-oss model that sampled ``<|return|>`` is fed its own ``<|return|>``
where a fresh render has ``<|end|>`` (which the template says should never be an input); the
alternative, replacing a sampled id, would train on ids the model never sampled. Where the close
starts with text BPE merges with the reply (``.`` + ``\\n<|end|>``: one token ``.\\n`` in a fresh
tokenization), the sampled ids stand and the close is appended as its own ids, tokenized apart.
Tool-use templates that loop over ``tools`` (or ``functions``) with no default, which fail on the
``tools=None`` transformers passes, are rendered with empty lists.

Where a template rewrites history (drops earlier ``<think>`` blocks), or a sampled ``<|return|>`` or a
close tokenized apart stands where a fresh render has other ids, the sequence differs from a fresh
render of the final history; interplay trains on what the model actually saw, and
``fresh_render_diff`` reports where the two part (``Trajectory.fresh_render_diff``).
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Message = dict[str, str]

#: Used, with a warning that names it, for tokenizers without a chat template (base models).
PLAIN_TEMPLATE_NAME = "interplay-plain"
PLAIN_TEMPLATE = (
    "{{- bos_token or '' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + '\n\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'User:\n' + message['content'] + '\n\n' }}"
    "{%- else -%}{{ 'Assistant:\n' + message['content'] + eos_token + '\n\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    # Ends in a newline, not a space: a reply's first word then starts a token of its own.
    "{%- if add_generation_prompt -%}{{ 'Assistant:\n' }}{%- endif -%}"
)
# The fixed reference conversation new messages are cut out of. Plain words, so no template trims or
# rewrites them, and a reply that no system prompt or observation will contain.
_REFERENCE_USER = "Reference question."
_REFERENCE_REPLY = "Reference reply zq7."
_PROBE_SYSTEM = "Probe system text zq7."
#: Reasoning markers looked for in a chat template (the first pair the template mentions is used).
THINKING_MARKERS = (("<think>", "</think>"), ("<thinking>", "</thinking>"), ("<|begin_of_thought|>", "<|end_of_thought|>"))


def generation_stop_ids(generation_config: Any) -> list[int]:
    """Every id of a ``generation_config.eos_token_id`` (an int, a list or None; no config: none)."""
    value = getattr(generation_config, "eos_token_id", None)
    if value is None:
        return []
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot be used to encode turns (the message says why)."""


def _name(tokenizer: Any) -> str:
    return getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__


@dataclass(frozen=True)
class Reasoned:
    """A reply split into its thinking part (None: no thinking) and the answer an environment gets."""

    reasoning: str | None
    answer: str


class ChatEncoder:
    """Encodes chat turns with ``tokenizer``'s chat template (see the module docstring).

    Args:
        tokenizer: a Hugging Face tokenizer (fast tokenizers give exact joins through offsets).
        chat_template_kwargs: passed to every render, e.g. ``{"enable_thinking": False}`` for Qwen3.
        stop_ids: ids that end a reply besides the tokenizer's eos and the template's end-of-turn id,
            e.g. every id of ``generation_config.eos_token_id``.
    """

    def __init__(self, tokenizer: Any, chat_template_kwargs: dict[str, Any] | None = None,
                 stop_ids: Iterable[int] = ()) -> None:
        if chat_template_kwargs is not None and not isinstance(chat_template_kwargs, dict):
            raise TypeError(f"chat_template_kwargs must be a dict (e.g. {{'enable_thinking': False}}), got "
                            f"{chat_template_kwargs!r:.80}.")
        self.tokenizer = tokenizer
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.template = getattr(tokenizer, "chat_template", None)
        self.template_name = "tokenizer"
        if not isinstance(self.template, str) or not self.template:
            if isinstance(self.template, dict):
                raise ChatTemplateError(f"tokenizer {_name(tokenizer)!r} has several named chat templates "
                                        f"({sorted(self.template)}); set tokenizer.chat_template to one of them.")
            if tokenizer.eos_token is None:
                raise ChatTemplateError(f"tokenizer {_name(tokenizer)!r} has neither a chat template nor an eos "
                                        "token, so replies could never end; set tokenizer.chat_template.")
            warnings.warn(
                f"tokenizer {_name(tokenizer)!r} has no chat template (a base model?): using interplay's plain "
                f"fallback template {PLAIN_TEMPLATE_NAME!r} ('User:' / 'Assistant:' headers, replies end "
                "with eos). Set tokenizer.chat_template to use another.",
                UserWarning,
                stacklevel=2,
            )
            self.template, self.template_name = PLAIN_TEMPLATE, PLAIN_TEMPLATE_NAME
        self.offsets = bool(getattr(tokenizer, "is_fast", False))
        self.added = self._added_tokens()
        self.added_pattern = (re.compile("(" + "|".join(map(re.escape, sorted(self.added, key=len, reverse=True))) + ")")
                              if self.added else None)
        self.empty_lists = self._probe_empty_lists()
        self.system_role = self._probe_system_role()
        self.thinking = self._find_thinking_markers()
        self.generation_opens_thinking = self._probe_generation_opens_thinking()
        self.close_ids, self.final_close_ids, self.close_apart = self._probe_close()
        special = self._special_ids()
        #: Index in close_ids of the template's end-of-turn id (its first special id), None without one.
        self.end_index = next((i for i, t in enumerate(self.close_ids) if t in special), None)
        #: The end-of-turn ids a sampled reply may end with: inside a conversation and at its end
        #: (gpt-oss: <|end|> and <|return|>), each standing for the template's close.
        self.turn_end_ids = frozenset(
            {*([self.close_ids[self.end_index]] if self.end_index is not None else []),
             *[t for t in self.final_close_ids if t in special][:1]}
        )
        eos = tokenizer.eos_token_id
        self.stop_ids: frozenset[int] = frozenset(
            {*(int(i) for i in stop_ids), *([eos] if eos is not None else []), *self.turn_end_ids}
        )
        if not self.stop_ids:
            raise ChatTemplateError(f"tokenizer {_name(tokenizer)!r} has no eos token and its template closes a "
                                    "reply with no special token: replies could never end.")
        self.end_id = self.close_ids[self.end_index] if self.end_index is not None else eos

    # ---- rendering and tokenizing ---------------------------------------------------------------
    def render(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        messages = self._fold_system(messages)
        try:
            return self._apply(messages, add_generation_prompt)
        except Exception as error:
            raise ChatTemplateError(
                f"the chat template of {_name(self.tokenizer)!r} failed to render {len(messages)} messages "
                f"(roles {[m['role'] for m in messages]}): {type(error).__name__}: {error}"
            ) from error

    def _apply(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages), chat_template=self.template, tokenize=False, add_generation_prompt=add_generation_prompt,
            **{**self.empty_lists, **self.chat_template_kwargs},
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _fold_system(self, messages: Sequence[Message]) -> list[Message]:
        """Templates without a system role get the system prompt at the head of the first user message."""
        messages = list(messages)
        if self.system_role or not messages or messages[0]["role"] != "system":
            return messages
        system, rest = messages[0]["content"], messages[1:]
        if rest and rest[0]["role"] == "user":
            return [{**rest[0], "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
        return [{"role": "user", "content": system}, *rest]

    # ---- the four parts of a sequence ----------------------------------------------------------
    def prompt(self, messages: Sequence[Message]) -> list[int]:
        """Ids of the first ``messages`` followed by the generation prompt."""
        return self.encode(self.render(messages, add_generation_prompt=True))

    def delta(self, new_messages: Sequence[Message], system: str | None = None) -> list[int]:
        """Ids that follow a closed assistant reply: ``new_messages`` and the generation prompt.

        ``system``: the episode's system prompt, for templates that render it relative to the newest
        message (it is part of the reference conversation, so such templates see it where they put it).
        """
        return self.delta_spans(new_messages, system)[0]

    def delta_spans(self, new_messages: Sequence[Message], system: str | None = None
                    ) -> tuple[list[int], str, list[tuple[int, int]]]:
        """``delta`` with its text and each id's character span in that text (without a fast tokenizer,
        each id gets its whole piece's span): what ``interplay.training.grpo_rollout.critique_mask`` marks
        feedback tokens with."""
        reference = self._reference(system)
        text = self.render([*reference, *new_messages], add_generation_prompt=True)
        ids, spans, close_ids, first_new = self._split(text, reference)
        if close_ids != self.close_ids:
            raise ChatTemplateError(
                f"the chat template of {_name(self.tokenizer)!r} closes an assistant reply with different ids "
                f"depending on what follows ({self.close_ids} vs {close_ids}), so turns cannot be appended."
            )
        start = spans[first_new][0] if first_new < len(spans) else len(text)
        return ids[first_new:], text[start:], [(a - start, b - start) for a, b in spans[first_new:]]

    def close(self, reply_ids: Sequence[int]) -> list[int]:
        """Ids that close a reply whose ids were ``reply_ids`` when more messages follow: the template's
        close, or, when the reply ended with an end-of-turn id, what the close has after its own one (a
        reply cut at max_new_tokens gets them all). A reply that ended with the end-of-conversation id
        (gpt-oss ``<|return|>``) keeps it where the template has ``<|end|>``: sampled ids stand, and
        ``fresh_render_diff`` reports the difference."""
        if self.end_index is not None and reply_ids and reply_ids[-1] in self.turn_end_ids:
            return self.close_ids[self.end_index + 1:]
        return list(self.close_ids)

    def reply_ids(self, text: str) -> list[int]:
        """Ids of a text agent's reply (expert, random, remote): the text as it tokenizes after the
        generation prompt (SentencePiece tokenizers add a "▁" to a text on its own), then the close up to its
        end-of-turn id (or eos where the close has none)."""
        prefix = self.render([{"role": "user", "content": _REFERENCE_USER}], add_generation_prompt=True)
        ids, spans = self._tokenize_with_spans(prefix + text, (len(prefix),))
        first = next((i for i, (a, b) in enumerate(spans) if b > len(prefix)), len(ids))
        # A token that would merge the generation prompt's tail with the reply: tokenize the reply alone.
        body = self.encode(text) if first < len(ids) and spans[first][0] < len(prefix) else ids[first:]
        if self.end_index is not None:
            return body + self.close_ids[: self.end_index + 1]
        return body + ([self.end_id] if self.end_id is not None else [])

    # ---- reasoning ------------------------------------------------------------------------------
    def split_reasoning(self, text: str) -> Reasoned:
        """The thinking part and the answer of a reply (the environment gets only the answer).

        A reply whose thinking never closed (cut at max_new_tokens) has an empty answer."""
        if self.thinking is None:
            return Reasoned(None, text)
        opener, closer = self.thinking
        at = text.rfind(closer)
        if at >= 0:
            thought = text[:at]
            head = thought.find(opener)
            return Reasoned(thought[head + len(opener):] if head >= 0 else thought, text[at + len(closer):].lstrip())
        if self.generation_opens_thinking or opener in text:
            return Reasoned(text.split(opener, 1)[-1], "")
        return Reasoned(None, text)

    def _probe_generation_opens_thinking(self) -> bool:
        """Whether the generation prompt itself opens a thinking block (the model starts inside it)."""
        if self.thinking is None:
            return False
        opener, closer = self.thinking
        tail = self.render([{"role": "user", "content": _REFERENCE_USER}], add_generation_prompt=True)
        tail = tail[tail.rfind(_REFERENCE_USER):]
        return tail.rfind(opener) > tail.rfind(closer)

    # ---- what a fresh render would give ----------------------------------------------------------
    def fresh_render_diff(self, messages: Sequence[Message], ids: Sequence[int]) -> int | None:
        """Where ``ids`` (a sequence ending in a reply and its close) part from a fresh render of
        ``messages`` (ending in that reply): the first differing index, or None when ``ids`` is a prefix
        of the fresh render (some templates add text after the last turn, e.g. Mistral's trailing space)."""
        fresh = self.encode(self.render(messages, add_generation_prompt=False))
        for i, (a, b) in enumerate(zip(fresh, ids)):
            if a != b:
                return i
        return None if len(fresh) >= len(ids) else len(fresh)

    # ---- probes (run once) ----------------------------------------------------------------------
    def _reference(self, system: str | None) -> list[Message]:
        head = [{"role": "system", "content": system}] if system else []
        return [*head, {"role": "user", "content": _REFERENCE_USER},
                {"role": "assistant", "content": _REFERENCE_REPLY}]

    def _split(self, text: str, reference: Sequence[Message]) -> tuple[list[int], list[tuple[int, int]], list[int], int]:
        """Tokenize a reference conversation + new messages: (ids, character spans, the ids that close the
        reference reply, index of the first id of the new messages)."""
        return self._cut(text, reference)[:4]

    def _cut(self, text: str, reference: Sequence[Message]
             ) -> tuple[list[int], list[tuple[int, int]], list[int], int, list[int], bool]:
        """``_split``, plus the ids that close the reply at the end of a conversation and whether the close
        had to be tokenized apart from the reply (a token of the whole text spans their join)."""
        closed = self.render(reference, add_generation_prompt=False)
        at = closed.rfind(_REFERENCE_REPLY)
        if at < 0 or text.find(_REFERENCE_REPLY) < 0:
            raise ChatTemplateError(
                f"the chat template of {_name(self.tokenizer)!r} does not render an assistant message's content "
                "(a reply never appears in the rendered text), so replies cannot be placed in the sequence."
            )
        final_text = closed[at + len(_REFERENCE_REPLY):]
        reply_end = text.find(_REFERENCE_REPLY) + len(_REFERENCE_REPLY)
        new_start = reply_end + len(self._close_text(final_text, text[reply_end:]))
        ids, spans = self._tokenize_with_spans(text, (reply_end, new_start))
        first_close = next((i for i, (a, b) in enumerate(spans) if b > reply_end), len(ids))
        # The first token holding a character of the new messages starts the delta; a token that
        # straddles the join (e.g. SentencePiece's "▁[") belongs to the delta, as in context.
        first_new = next((i for i, (a, b) in enumerate(spans) if b > new_start), len(ids))
        if first_close == len(ids) or spans[first_close][0] >= reply_end:
            return ids, spans, ids[first_close:first_new], first_new, self.encode(final_text), False
        # A token spans the reply's end and its close (BPE merges "." with a close's "\n"): a sampled
        # reply stands as sampled, so its close is its own ids, tokenized apart.
        head = spans[first_new][0] if first_new < len(ids) else len(text)
        if head < reply_end:
            raise ChatTemplateError(
                f"with the chat template of {_name(self.tokenizer)!r}, one token spans the end of a reply, its "
                f"end-of-turn text ({text[reply_end:new_start]!r}) and the next message, so turns cannot be cut "
                "apart; use a template whose end-of-turn text starts with a special token."
            )
        return ids, spans, self.encode(text[reply_end:head]), first_new, self.encode(final_text), True

    def _close_text(self, final: str, after: str) -> str:
        """The text that closes a reply when more messages follow, out of ``after`` (the text after the
        reply in a longer conversation): what agrees with ``final`` (the text after it at the end of a
        conversation), compared piece by piece between added tokens. The end-of-turn token itself may
        differ (gpt-oss: ``<|return|>`` at the end, ``<|end|>`` inside); what only one of them has after
        the agreement (Phi-3.5's eos at the end, the next message's header inside) is not the close."""
        finals, afters = self._pieces(final), self._pieces(after)
        kept: list[str] = []
        for f, a in zip(finals, afters):
            if f == a:
                kept.append(a)
                continue
            if f in self.added and a in self.added and not any(p in self.added for p in kept):
                kept.append(a)
                continue
            if f not in self.added and a not in self.added:
                kept.append(os.path.commonprefix([f, a]))
            break
        return "".join(kept)

    def _pieces(self, text: str) -> list[str]:
        """``text`` split into added tokens and the plain text between them (the tokenizer splits there too)."""
        if self.added_pattern is None:
            return [text] if text else []
        return [piece for piece in self.added_pattern.split(text) if piece]

    def _tokenize_with_spans(self, text: str, cuts: tuple[int, ...]) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids of ``text`` and their character spans. A slow tokenizer has no offsets: the text is then
        tokenized piece by piece between ``cuts``, and each id gets its piece's span."""
        if self.offsets:
            encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            return list(encoded["input_ids"]), [tuple(span) for span in encoded["offset_mapping"]]
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        bounds = [0, *cuts, len(text)]
        for a, b in zip(bounds, bounds[1:]):
            piece = self.encode(text[a:b])
            ids += piece
            spans += [(a, b)] * len(piece)
        return ids, spans

    def _probe_close(self) -> tuple[list[int], list[int], bool]:
        """(ids that close a reply inside a conversation, ids that close it at the end, whether the close
        is tokenized apart from the reply)."""
        reference = self._reference(None)
        text = self.render([*reference, {"role": "user", "content": _REFERENCE_USER}], add_generation_prompt=True)
        _, _, close_ids, _, final_ids, apart = self._cut(text, reference)
        return close_ids, final_ids, apart

    def _probe_empty_lists(self) -> dict[str, list]:
        """``tools=[]`` / ``functions=[]`` for templates that loop over them with no default (Hermes and
        other tool-use templates): without tools, transformers passes ``tools=None`` and the loop fails.
        Only where a render fails without them: ``[]`` and ``None`` render differently in some templates."""
        names = [n for n in ("tools", "functions")
                 if n not in self.chat_template_kwargs and re.search(rf"\bin\s+{n}\b", self.template)]
        if not names:
            return {}
        try:
            self._apply([{"role": "user", "content": _REFERENCE_USER}], add_generation_prompt=True)
        except Exception:
            return {n: [] for n in names}
        return {}

    def _probe_system_role(self) -> bool:
        messages = [{"role": "system", "content": _PROBE_SYSTEM}, {"role": "user", "content": _REFERENCE_USER}]
        try:
            text = self._apply(messages, add_generation_prompt=True)
        except Exception:  # e.g. Mistral v0.1: raise_exception('Only user and assistant roles are supported!')
            return False
        return _PROBE_SYSTEM in text

    def _find_thinking_markers(self) -> tuple[str, str] | None:
        return next(((a, b) for a, b in THINKING_MARKERS if b in self.template), None)

    def _added_tokens(self) -> frozenset[str]:
        """The added tokens' texts (special or not): the tokenizer never merges them with their neighbours."""
        get = getattr(self.tokenizer, "get_added_vocab", None)
        return frozenset(t for t in (get() if get else {}) if t)

    def _special_ids(self) -> set[int]:
        special = set(getattr(self.tokenizer, "all_special_ids", []) or [])
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        return special | {i for i, token in added.items() if getattr(token, "special", False)}

    # ---- reports --------------------------------------------------------------------------------
    def quirks(self) -> dict[str, Any]:
        """What the template does that matters for multi-turn encoding (``interplay doctor`` prints it)."""
        one = [{"role": "user", "content": _REFERENCE_USER}]
        bare = self.render(one, add_generation_prompt=True)
        padded = self.render([{"role": "user", "content": f"  {_REFERENCE_USER}\n"}], add_generation_prompt=True)
        history = [*one, {"role": "assistant", "content": _REFERENCE_REPLY, "reasoning_content": "thought"}]
        longer = self.render([*history, {"role": "user", "content": "next"}], add_generation_prompt=True)
        short = self.render(history, add_generation_prompt=False)
        final, inner = (self.tokenizer.decode(ids) for ids in (self.final_close_ids, self.close_ids))
        return {
            "template": self.template_name,
            "prefix_stable": longer.startswith(short),
            "trims_content": f"  {_REFERENCE_USER}\n" not in padded,
            "system_role": self.system_role,
            "default_system_prompt": self._default_system_prompt(bare[: bare.find(_REFERENCE_USER)]),
            "thinking_markers": list(self.thinking) if self.thinking else None,
            "rewrites_history": self.thinking is not None and "thought" in short and "thought" not in longer,
            "generation_prompt_opens_thinking": self.generation_opens_thinking,
            "chat_template_kwargs": self.chat_template_kwargs,
            # The close at the end of a conversation, where its tokens differ from the close inside it.
            "end_of_conversation_close": final if self._added_in(final) != self._added_in(inner) else None,
            "close_tokenized_apart": self.close_apart,
            "empty_lists": sorted(self.empty_lists),
        }

    def _added_in(self, text: str) -> list[str]:
        return [piece for piece in self._pieces(text) if piece in self.added]

    def _default_system_prompt(self, head: str) -> str | None:
        """Text a template puts before the first user message without being given a system prompt,
        less special tokens and role names (e.g. Qwen2.5's "You are Qwen, ...")."""
        ids = self.encode(head)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        # Role names only where they head a line: "You are a helpful AI assistant" keeps its "assistant".
        text = re.sub(r"(?im)^\s*(system|user|assistant|model)\b:?|\[/?INST\]", " ", text).strip()
        return text if len(text.split()) >= 3 else None

    def fingerprint(self) -> dict[str, Any]:
        """Hashes of the tokenizer (vocabulary + pipeline) and of the chat template, and the kwargs."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        spec = backend.to_str() if backend is not None else repr(sorted(self.tokenizer.get_vocab().items()))
        return {
            "tokenizer": getattr(self.tokenizer, "name_or_path", ""),
            "tokenizer_sha256": hashlib.sha256(spec.encode()).hexdigest()[:16],
            "chat_template_sha256": hashlib.sha256(self.template.encode()).hexdigest()[:16],
            "chat_template": self.template_name,
            "chat_template_kwargs": self.chat_template_kwargs,
        }
