"""``interplay doctor MODEL``: what a user needs to know about a model before a long run.

Loads the tokenizer, the model config and the generation config (no weights), and reports the
family, the chat template's quirks and what interplay does about each, the stop and pad ids, the
encoding interplay will use, and a two-turn dry run on one environment (the expert plays) showing the
exact token stream, agent and environment tokens marked. ``diagnose`` returns the report as a dict;
``render`` turns it into text; a model that cannot be used gets ``usable: False`` and the reason.
"""

from __future__ import annotations

import warnings
from typing import Any

#: What interplay does about each quirk (printed beside the quirks found).
REMEDIES = {
    "prefix_stable": "the history re-renders as a prefix: a fresh render equals the sequence played",
    "not_prefix_stable": "turns are cut from a fixed reference conversation, so a re-render of the history is "
                         "never needed; trajectories report where a fresh render differs (fresh_render_diff)",
    "trims_content": "observations are encoded as the template renders them (trimmed); replies keep their sampled ids",
    "no_system_role": "interplay puts the system prompt at the head of the first user message",
    "default_system_prompt": "the template's default system prompt is in every prompt unless the environment sets one",
    "thinking": "the environment gets only the answer after the closing marker; the trajectory keeps every "
                "token; thinking_budget can close the thinking part early",
    "rewrites_history": "earlier thinking is dropped by a fresh render; training uses what the model saw",
    "fallback_template": "no chat template: interplay's plain fallback template is used (a base model)",
    "end_of_conversation_close": "replies stop at either end-of-turn id and keep the one sampled; the close inside "
                                 "a conversation follows it (a fresh render may differ there: fresh_render_diff)",
    "close_tokenized_apart": "the end-of-turn text merges with a reply's last characters under BPE: sampled ids "
                             "stand and the close is appended as its own ids (fresh_render_diff reports the join)",
    "empty_lists": "the template loops over tools/functions with no default: it is rendered with empty lists",
}


def _load_configs(name: str) -> tuple[Any, Any, Any]:
    from transformers import AutoConfig, GenerationConfig

    from interplay import models

    tokenizer = models.load_tokenizer(name)
    path = models.resolve(models.weights_root(name))  # a LoRA adapter directory: its base's configs
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):  # a tokenizer-only directory: the family stays unknown
        config = None
    try:
        generation = GenerationConfig.from_pretrained(path)
    except OSError:  # many checkpoints have no generation_config.json
        generation = None
    return tokenizer, config, generation


def diagnose(name: str, env_id: str = "interplay/CodeBreaker-v0", chat_template_kwargs: dict[str, Any] | None = None,
             seed: int = 0) -> dict[str, Any]:
    """The doctor's findings for ``name`` (see the module docstring)."""
    from interplay.agents.chat import ChatEncoder, ChatTemplateError, generation_stop_ids

    report: dict[str, Any] = {"model": name, "usable": False}
    try:
        tokenizer, config, generation = _load_configs(name)
    except (OSError, ValueError) as error:
        report["reason"] = f"cannot load the tokenizer: {error}"
        return report
    report["family"] = getattr(config, "model_type", None) or "unknown (no config.json)"
    report["architectures"] = list(getattr(config, "architectures", None) or [])
    report["tokenizer_class"] = type(tokenizer).__name__
    generation_eos = generation_stop_ids(generation)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            encoder = ChatEncoder(tokenizer, chat_template_kwargs, stop_ids=generation_eos)
        except ChatTemplateError as error:
            report["reason"] = f"the chat template cannot be used: {error}"
            return report
    report["warnings"] = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    report["quirks"] = encoder.quirks()
    report["remedies"] = _remedies(report["quirks"])
    tokens = tokenizer.convert_ids_to_tokens
    report["stop_ids"] = {int(i): tokens(int(i)) for i in sorted(encoder.stop_ids)}
    report["generation_config_eos"] = generation_eos
    report["eos"] = [tokenizer.eos_token_id, tokenizer.eos_token]
    report["pad"] = [tokenizer.pad_token_id, tokenizer.pad_token,
                     "equals eos" if tokenizer.pad_token_id == tokenizer.eos_token_id else "distinct"]
    report["encoding"] = {
        "prompt": "first messages rendered with the generation prompt, tokenized once",
        "reply": "the sampled ids as they are, ending in a stop id",
        "close": [tokens(i) for i in encoder.close_ids],
        "environment_turn": "new messages + generation prompt, cut from a fixed reference conversation",
    }
    try:
        report["dry_run"] = _dry_run(encoder, env_id, seed)
    except ChatTemplateError as error:
        report["reason"] = f"the dry run on {env_id} failed: {error}"
        return report
    report["usable"] = True
    return report


def _remedies(quirks: dict[str, Any]) -> list[str]:
    found = ["prefix_stable" if quirks["prefix_stable"] else "not_prefix_stable"]
    found += [key for key in ("trims_content", "rewrites_history") if quirks[key]]
    found += ["no_system_role"] if not quirks["system_role"] else []
    found += ["default_system_prompt"] if quirks["default_system_prompt"] else []
    found += ["thinking"] if quirks["thinking_markers"] else []
    found += ["fallback_template"] if quirks["template"] != "tokenizer" else []
    found += [key for key in ("end_of_conversation_close", "close_tokenized_apart", "empty_lists") if quirks[key]]
    return [f"{key}: {REMEDIES[key]}" for key in found]


def _dry_run(encoder: Any, env_id: str, seed: int) -> dict[str, Any]:
    """Two expert turns on ``env_id``: the token stream, split into agent and environment runs."""
    from interplay.agents.base import ExpertAgent
    from interplay.rollout import EnvSpec, rollout

    [t] = rollout(EnvSpec(env_id, seed=seed), ExpertAgent(), max_turns=2, tokenizer=encoder)
    def pieces(ids: list[int]) -> list[str]:  # each id's text, newlines and tabs escaped
        return [repr(encoder.tokenizer.decode([i]))[1:-1] for i in ids]

    runs = [("environment", list(t.prompt_ids))]
    runs += [("agent" if by_agent else "environment", t.completion_ids[start:end]) for start, end, by_agent in t.spans()]
    return {
        "env": env_id,
        "seed": seed,
        "turns": t.turns,
        "tokens": len(t.prompt_ids) + len(t.completion_ids),
        "agent_tokens": sum(t.agent_mask),
        "fresh_render_diff": t.fresh_render_diff,
        "runs": [{"who": who, "ids": ids, "tokens": pieces(ids)} for who, ids in runs],
    }


def render(report: dict[str, Any]) -> str:
    """The report as text for the terminal."""
    lines = [f"model: {report['model']}"]
    if "family" in report:
        lines += [f"family: {report['family']} {report.get('architectures') or ''}".rstrip(),
                  f"tokenizer: {report['tokenizer_class']}"]
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    if "quirks" in report:
        lines.append("chat template:")
        lines += [f"  {key}: {value}" for key, value in report["quirks"].items()]
        lines.append("what interplay does:")
        lines += [f"  - {remedy}" for remedy in report["remedies"]]
        lines += [f"stop ids: {report['stop_ids']}  (generation_config eos: {report['generation_config_eos']})",
                  f"eos: {report['eos']}  pad: {report['pad']}",
                  "encoding:"]
        lines += [f"  {key}: {value}" for key, value in report["encoding"].items()]
    if "dry_run" in report:
        run = report["dry_run"]
        lines.append(f"dry run: {run['env']} seed {run['seed']}, {run['turns']} expert turns, {run['tokens']} tokens "
                     f"({run['agent_tokens']} agent); fresh render differs at: {run['fresh_render_diff']}")
        for part in run["runs"]:
            mark = "AGENT" if part["who"] == "agent" else "env  "
            lines.append(f"  [{mark}] " + "|".join(part["tokens"]))
    lines.append("usable: yes" if report["usable"] else f"usable: NO - {report.get('reason')}")
    return "\n".join(lines)
