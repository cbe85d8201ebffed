"""Token ids of a growing chat: the prompt, then each new turn as the chat-template *delta*.

A multi-turn episode is one token sequence. Turn t appends ``render(history + new) - render(history)``
(strings), tokenized on its own: exactly what a KV-cached model is fed, and what training sees.
This needs the template's prefix property — rendering a longer history only appends text — which
``ChatEncoder`` checks on every turn and reports clearly when a template breaks it (e.g. templates
that rewrite earlier assistant turns).
"""

from __future__ import annotations

import hashlib
from typing import Any

Message = dict[str, str]


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot be used incrementally (or is missing)."""


class ChatEncoder:
    """Renders and tokenizes chat histories turn by turn with ``tokenizer``'s chat template."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ChatTemplateError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no chat template; "
                "set tokenizer.chat_template (a Jinja template with system/user/assistant roles)."
            )
        self.tokenizer = tokenizer

    def render(self, messages: list[Message], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt(self, messages: list[Message]) -> list[int]:
        """Ids of ``messages`` followed by the generation prompt."""
        return self.encode(self.render(messages, add_generation_prompt=True))

    def _suffix(self, before: str, after: str, what: str) -> str:
        if not after.startswith(before):
            raise ChatTemplateError(
                f"the chat template of {getattr(self.tokenizer, 'name_or_path', '?')!r} does not render "
                f"{what} as an extension of the shorter history (the prefix property fails), so turns "
                "cannot be tokenized incrementally. Use a template that only appends text per message."
                f"\n  shorter: ...{before[-120:]!r}\n  longer:  ...{after[len(before) - 120 :][:240]!r}"
            )
        return after[len(before) :]

    def user_delta(self, history: list[Message], new_messages: list[Message]) -> list[int]:
        """Ids that extend a history ending in a (closed) assistant turn by ``new_messages`` and the
        generation prompt."""
        before = self.render(history, add_generation_prompt=False)
        after = self.render(history + new_messages, add_generation_prompt=True)
        return self.encode(self._suffix(before, after, "new environment messages"))

    def assistant_text(self, history: list[Message], content: str) -> str:
        """The text the template appends after the generation prompt for an assistant reply
        ``content`` (e.g. ``content + "<|end|>"``)."""
        before = self.render(history, add_generation_prompt=True)
        after = self.render(history + [{"role": "assistant", "content": content}], add_generation_prompt=False)
        return self._suffix(before, after, "an assistant reply")

    def assistant_close(self, history: list[Message], content: str) -> list[int]:
        """Ids that close an assistant reply whose text ``content`` was already fed (e.g. [eos])."""
        text = self.assistant_text(history, content)
        if not text.startswith(content):
            raise ChatTemplateError(
                "the chat template changes the assistant's reply text when rendering it (e.g. strips "
                "it), so a sampled reply cannot be closed incrementally; use a template that renders "
                "message['content'] verbatim."
            )
        return self.encode(text[len(content) :])

    def fingerprint(self) -> dict[str, str]:
        """Hashes of the tokenizer (vocabulary + pipeline) and of the chat template."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        spec = backend.to_str() if backend is not None else repr(sorted(self.tokenizer.get_vocab().items()))
        return {
            "tokenizer": getattr(self.tokenizer, "name_or_path", ""),
            "tokenizer_sha256": hashlib.sha256(spec.encode()).hexdigest()[:16],
            "chat_template_sha256": hashlib.sha256(self.tokenizer.chat_template.encode()).hexdigest()[:16],
        }
