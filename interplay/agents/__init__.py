"""Agents: who acts. One protocol (see ``interplay.agents.base``): a batch of chat histories in, a
batch of replies out; ``agent.start(n)`` gives a session that keeps per-episode state (KV caches).

``from_spec(name)`` builds an agent from a command-line name: "expert", "random", "human",
"openai:MODEL" (an OpenAI-compatible endpoint), "vllm:MODEL" (vLLM, on a CUDA machine with the vllm
extra), or anything ``interplay.models.load`` accepts (a LoRA adapter directory: merged into its base).
"""

from __future__ import annotations

from typing import Any

from interplay.agents.base import (
    Agent,
    AgentError,
    ExpertAgent,
    HistorySession,
    HumanAgent,
    RandomAgent,
    Reply,
    Session,
    TextAgent,
)
from interplay.agents.chat import ChatEncoder, ChatTemplateError, Message


def __getattr__(name: str) -> Any:
    # torch and openai load only when these are used
    if name == "HFAgent":
        from interplay.agents.hf import HFAgent

        return HFAgent
    if name == "VLLMAgent":
        from interplay.agents.vllm import VLLMAgent

        return VLLMAgent
    if name == "OpenAIAgent":
        from interplay.agents.openai_agent import OpenAIAgent

        return OpenAIAgent
    raise AttributeError(f"module 'interplay.agents' has no attribute {name!r}")


def from_spec(spec: str, **kwargs: Any) -> Agent:
    """An agent from a name; ``kwargs`` go to its constructor (e.g. sampling params for models)."""
    simple = {"expert": ExpertAgent, "human": HumanAgent}
    if spec in simple:
        return simple[spec]()
    if spec == "random":
        return RandomAgent(seed=kwargs.get("seed"))
    if spec.startswith("openai:"):
        from interplay.agents.openai_agent import OpenAIAgent

        return OpenAIAgent(model=spec.split(":", 1)[1], **kwargs)
    if spec.startswith("vllm:"):
        from interplay.agents.vllm import VLLMAgent

        if kwargs.pop("thinking_budget", None) is not None:
            raise ValueError("thinking_budget is not supported by vLLM agents (vLLM samples whole replies).")
        return VLLMAgent(spec.split(":", 1)[1], **kwargs)
    from interplay.agents.hf import HFAgent

    return HFAgent(spec, **kwargs)


__all__ = [
    "Agent",
    "AgentError",
    "ChatEncoder",
    "ChatTemplateError",
    "ExpertAgent",
    "HFAgent",
    "HistorySession",
    "HumanAgent",
    "Message",
    "OpenAIAgent",
    "RandomAgent",
    "Reply",
    "Session",
    "TextAgent",
    "VLLMAgent",
    "from_spec",
]
