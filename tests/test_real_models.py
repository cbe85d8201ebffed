"""Real tokenizers and chat templates of five model families, each with a random-init tiny model of its
transformers architecture (``interplay.models.families``): rollouts, exact log-probs, greedy = generate,
SFT and GRPO steps, evaluation with coverage, replay, reasoning, fallback template, ``interplay doctor``."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from trl import GRPOConfig, SFTConfig

from interplay import models
from interplay.agents import ExpertAgent, HFAgent
from interplay.agents.chat import PLAIN_TEMPLATE_NAME, ChatEncoder
from interplay.cli import main
from interplay.models.families import FAMILIES, family_checkpoint
from interplay.rollout import EnvSpec, load_trajectories, replay, rollout
from interplay.training.grpo import GRPOTrainingConfig, grpo_defaults, train_grpo
from interplay.training.imitation import ImitationConfig, sft_defaults, train_imitation

FIXTURES = Path(__file__).parent / "fixtures" / "tokenizers"
CODE = "interplay/CodeBreaker-v0"
ENVS = [EnvSpec("interplay/Maze-v0", {"width": 3, "height": 3}, 1), EnvSpec("interplay/MathFeedback-v0", seed=1),
        EnvSpec(CODE, seed=1), EnvSpec(CODE, seed=2)]
#: What each family's template does (measured by ChatEncoder.quirks), as the closing note reports it.
QUIRKS = {
    "qwen2_5": {"default_system_prompt": True, "trims_content": False, "system_role": True, "rewrites_history": False},
    "qwen3": {"default_system_prompt": False, "trims_content": False, "system_role": True, "rewrites_history": True},
    "llama3": {"default_system_prompt": False, "trims_content": True, "system_role": True, "rewrites_history": False},
    "gemma3": {"default_system_prompt": False, "trims_content": True, "system_role": True, "rewrites_history": False},
    "mistral": {"default_system_prompt": False, "trims_content": False, "system_role": False,
                "rewrites_history": False},
}
FAST_SFT = {"max_steps": 2, "per_device_train_batch_size": 2, "warmup_steps": 0, "logging_steps": 1,
            "save_strategy": "no", "disable_tqdm": True}
FAST_GRPO = {"max_steps": 2, "per_device_train_batch_size": 4, "num_generations": 2, "logging_steps": 1,
             "save_strategy": "no", "disable_tqdm": True}
_loaded: dict[str, tuple] = {}


def checkpoint(name: str) -> str:
    return str(family_checkpoint(name, FIXTURES))


def loaded(name: str) -> tuple:
    if name not in _loaded:
        _loaded.clear()  # one family's model in memory at a time
        _loaded[name] = models.load(checkpoint(name))
    return _loaded[name]


def agent_runs(t) -> list[tuple[int, int]]:
    """(start, end) of each reply inside ``completion_ids``."""
    return [(start, end) for start, end, by_agent in t.spans() if by_agent]


@pytest.mark.parametrize("family", FAMILIES)
def test_template_quirks_and_stop_ids(family):
    model, tokenizer = loaded(family)
    agent = HFAgent(model, tokenizer)
    quirks = agent.encoder.quirks()
    expected = QUIRKS[family]
    assert bool(quirks["default_system_prompt"]) == expected["default_system_prompt"]
    assert {k: quirks[k] for k in ("trims_content", "system_role", "rewrites_history")} == {
        k: expected[k] for k in ("trims_content", "system_role", "rewrites_history")}
    # Every id of generation_config.eos_token_id ends a reply, and so does the template's end of turn.
    eos = model.generation_config.eos_token_id
    assert set(eos if isinstance(eos, list) else [eos]) <= agent.encoder.stop_ids
    assert agent.encoder.close_ids[0] in agent.encoder.stop_ids


def ending_sometimes(model, *token_ids: int):
    """A copy of a random-init ``model`` that samples one of ``token_ids`` with probability ~0.3 at every step
    (its logits are nearly uniform), so replies end on the template's end-of-turn id, not only at max_new_tokens."""
    model = copy.deepcopy(model)
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[list(token_ids)] = math.log(0.43 * head.out_features / len(token_ids))
    model.set_output_embeddings(biased)
    return model


def max_logprob_error(model, played) -> float:
    """The largest |recorded - teacher-forced| log-prob over the agent's tokens of ``played``, the
    teacher-forced ones from one uncached forward pass over each trajectory's prompt + completion."""
    worst = 0.0
    for t in played:
        ids = torch.tensor([t.prompt_ids + t.completion_ids])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        forced = logprobs.gather(-1, ids[0, 1:, None])[:, 0][len(t.prompt_ids) - 1:]
        agent_positions = torch.tensor(t.agent_mask, dtype=torch.bool)
        error = (forced[agent_positions] - torch.tensor(t.logprobs)[agent_positions]).abs().max().item()
        worst = max(worst, error)
    return worst


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_rollouts_record_what_the_model_was_fed(family):
    model, tokenizer = loaded(family)
    model = ending_sometimes(model, HFAgent(model, tokenizer).encoder.close_ids[0])
    agent = HFAgent(model, tokenizer, seed=0, max_new_tokens=6)
    played = rollout(ENVS, agent, max_turns=3)
    close = agent.encoder.close_ids
    ended = 0
    for t in played:
        for _start, end in agent_runs(t)[:-1]:
            # A reply that sampled the end-of-turn id is closed by the rest of the template's close ids.
            sampled_end = t.completion_ids[end - 1] == close[0]
            ended += sampled_end
            after = t.completion_ids[end: end + len(close)]
            assert after[: len(close) - sampled_end] == close[sampled_end:]
    assert ended > 0
    for t in played:
        assert 1 <= t.turns <= 3 and len(t.completion_ids) == len(t.agent_mask) == len(t.logprobs)
        assert replay(t)[-1] == t.messages[-1]["content"]
    worst = max_logprob_error(model, played)
    print(f"{family}: max |log-prob error| {worst:.2e} over {sum(sum(t.agent_mask) for t in played)} agent tokens")
    assert worst < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_replies_equal_generate(family):
    model, tokenizer = loaded(family)
    agent = HFAgent(model, tokenizer, temperature=0.0, max_new_tokens=5)
    stop = sorted(agent.encoder.stop_ids)
    for t in rollout([EnvSpec(CODE, seed=3), EnvSpec("interplay/MathFeedback-v0", seed=3)], agent, max_turns=2):
        for start, end in agent_runs(t):
            prefix = torch.tensor([t.prompt_ids + t.completion_ids[:start]])
            out = model.generate(prefix, attention_mask=torch.ones_like(prefix), do_sample=False, max_new_tokens=5,
                                 eos_token_id=stop, pad_token_id=agent.pad_id)
            generated = out[0, prefix.shape[1]:].tolist()
            assert generated[: end - start] == t.completion_ids[start:end]


@pytest.mark.parametrize("family", FAMILIES)
def test_expert_transcripts_agree_with_a_fresh_render(family):
    """Text agents' replies are tokenized as in context, so the sequence is what a fresh render gives,
    except where the template rewrites the last turn (Qwen3 wraps it in an empty thinking block). (Where
    a reply's first characters merge with the generation prompt's last token in a fresh tokenization,
    e.g. Mistral's "[/INST]" + "\\boxed" -> "]\\", no appended sequence can agree; not tested here.)"""
    encoder = ChatEncoder(models.load_tokenizer(checkpoint(family)))
    for t in rollout([ENVS[0], ENVS[2]], ExpertAgent(), max_turns=3, tokenizer=encoder):
        assert (t.fresh_render_diff is not None) == (family == "qwen3"), t.fresh_render_diff
        assert t.completion_ids[-1] == encoder.end_id and sum(t.agent_mask) > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_sft_and_grpo_two_steps_and_eval_with_coverage(family, tmp_path, capsys):
    path = checkpoint(family)
    sft = ImitationConfig(env=CODE, model=path, episodes=4, eval_episodes=2, max_new_tokens=4, max_turns=4)
    result = train_imitation(sft, SFTConfig(output_dir=str(tmp_path / "sft"), **sft_defaults(**FAST_SFT)),
                             progress=False)
    assert [e["step"] for e in result.log_history if "loss" in e] == [1, 2]
    grpo = GRPOTrainingConfig(env=CODE, model=str(tmp_path / "sft"), max_new_tokens=4, max_turns=2, eval_episodes=2)
    result = train_grpo(grpo, GRPOConfig(output_dir=str(tmp_path / "grpo"), **grpo_defaults(**FAST_GRPO)))
    assert [e["step"] for e in result.log_history if "loss" in e] == [1, 2]
    assert main(["eval", "--env", CODE, "--model", str(tmp_path / "grpo"), "-n", "2", "--max-new-tokens", "4",
                 "--max-turns", "2", "--coverage", "--out", str(tmp_path / "eval.json")]) == 0
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert "coverage" in scores and 0 <= scores["success_rate"] <= 1


def thinking_tokenizer():
    """Qwen3's tokenizer with a template whose generation prompt opens the thinking part, as the
    Qwen3 thinking-only releases do (the model starts inside ``<think>``)."""
    tokenizer = models.load_tokenizer(checkpoint("qwen3"))
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "{{- '<|im_start|>assistant\\n' }}\n    {%- if enable_thinking", "{{- '<|im_start|>assistant\\n<think>\\n' }}\n"
        "    {%- if enable_thinking")
    assert ChatEncoder(tokenizer).generation_opens_thinking
    return tokenizer


def test_thinking_budget_closes_the_thought_and_the_environment_gets_the_answer():
    model, _ = loaded("qwen3")
    tokenizer = thinking_tokenizer()
    agent = HFAgent(model, tokenizer, temperature=0.0, max_new_tokens=8, thinking_budget=3)
    [t] = rollout(EnvSpec(CODE, seed=4), agent, max_turns=2)
    close = agent.encoder.encode("\n</think>\n\n")
    first = agent_runs(t)[0][0]
    # Three thinking tokens, then the inserted closing marker (no gradient, log-prob 0), then the answer.
    assert t.agent_mask[first: first + 3] == [1, 1, 1]
    assert t.completion_ids[first + 3: first + 3 + len(close)] == close
    assert t.agent_mask[first + 3: first + 3 + len(close)] == [0] * len(close)
    assert t.logprobs[first + 3: first + 3 + len(close)] == [0.0] * len(close)
    [reply, *_] = [m for m in t.messages if m["role"] == "assistant"]
    # The thought is the text before the closing marker (whose own first id is a newline).
    assert reply["reasoning_content"] == tokenizer.decode(t.completion_ids[first: first + 3] + close[:1])
    start, end = agent_runs(t)[1]  # the inserted marker splits the reply into thought and answer
    assert start == first + 3 + len(close)
    answer_ids = t.completion_ids[start:end]
    answer_ids = answer_ids[: -1] if answer_ids[-1] in agent.encoder.stop_ids else answer_ids
    assert reply["content"] == tokenizer.decode(answer_ids, skip_special_tokens=True).lstrip()
    # The environment got the answer alone: replaying the recorded answers reproduces every observation.
    assert "</think>" not in reply["content"] and len(replay(t)) == t.turns + 1
    # A fresh render drops the earlier thinking: the trajectory says where it parts from the sequence played.
    assert t.turns < 2 or t.fresh_render_diff is not None


def test_enable_thinking_switch_from_the_api_the_config_and_the_cli(tmp_path):
    model, tokenizer = loaded("qwen3")
    off = {"enable_thinking": False}
    agent = HFAgent(model, tokenizer, max_new_tokens=2, chat_template_kwargs=off)
    [t] = rollout(EnvSpec(CODE, seed=5), agent, max_turns=1)
    assert tokenizer.decode(t.prompt_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert t.manifest["chat_template_kwargs"] == off and t.manifest["sampling"]["chat_template_kwargs"] == off
    assert GRPOTrainingConfig(chat_template_kwargs=off).agent_kwargs()["chat_template_kwargs"] == off
    out = tmp_path / "t.jsonl"
    assert main(["rollout", "--env", CODE, "--model", checkpoint("qwen3"), "-n", "1", "--max-new-tokens", "2",
                 "--max-turns", "1", "--chat-template-kwargs", json.dumps(off), "--out", str(out)]) == 0
    [saved] = load_trajectories(out)
    assert tokenizer.decode(saved.prompt_ids).endswith("</think>\n\n")


def test_base_model_without_a_template_gets_the_plain_fallback():
    model, tokenizer = loaded("llama3")
    base = models.load_tokenizer(checkpoint("llama3"))
    base.chat_template = None
    with pytest.warns(UserWarning, match=PLAIN_TEMPLATE_NAME):
        agent = HFAgent(model, base, seed=0, max_new_tokens=4)
    [t] = rollout(EnvSpec(CODE, {"max_attempts": 2}, seed=6), agent)  # the task's own limit: no note in the prompt
    assert base.decode(t.prompt_ids).startswith("<|begin_of_text|>")
    assert base.decode(t.prompt_ids).endswith("User:\ncode 3 digits\n\nAssistant:\n")
    assert agent.encoder.stop_ids >= {base.eos_token_id}


@pytest.mark.parametrize("family", FAMILIES)
def test_doctor_reports_quirks_and_a_marked_dry_run(family, capsys):
    assert main(["doctor", checkpoint(family)]) == 0
    out = capsys.readouterr().out
    assert f"family: {FAMILIES[family].model_type}" in out and "[AGENT]" in out and "usable: yes" in out
    assert f"system_role: {QUIRKS[family]['system_role']}" in out


def test_doctor_fails_with_the_reason(tmp_path, capsys):
    broken = tmp_path / "broken"
    tokenizer = models.load_tokenizer(checkpoint("llama3"))
    tokenizer.chat_template = "{{ messages[-1]['content'] }}"  # replies never rendered
    tokenizer.save_pretrained(broken)
    assert main(["doctor", str(broken)]) == 1
    assert "usable: NO" in capsys.readouterr().out
