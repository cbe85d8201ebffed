"""Chat templates that close a turn unusually (``tests/fixtures/templates``, see SOURCE.md there), each
on Qwen3's real BPE tokenizer with the template's special tokens added and Qwen3's random-init tiny model:

- gpt-oss (harmony) closes a turn with ``<|return|>`` at the end of a conversation, ``<|end|>`` inside it;
  Phi-3.5-mini adds eos after ``<|end|>\\n`` at the end;
- Hermes-2-Pro's tool-use template loops over ``tools`` with no default;
- ``close_after_text`` ends a turn with ``\\n<|end|>\\n``, whose newline BPE merges with a reply's last ``.``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_real_models import CODE, ENVS, agent_runs, checkpoint, ending_sometimes, loaded, max_logprob_error
from tokenizers import AddedToken

from interplay import models
from interplay.agents import ExpertAgent, HFAgent
from interplay.agents.chat import ChatEncoder
from interplay.rollout import EnvSpec, rollout

TEMPLATES_DIR = Path(__file__).parent / "fixtures" / "templates"
PHI_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
#: template -> (special tokens added to Qwen3's tokenizer, eos token, generation_config eos tokens), as
#: the template's own model has them (Qwen3's tokenizer already has <|endoftext|>, <|im_end|>).
TEMPLATES = {
    "gpt_oss": (("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>"),
                "<|return|>", ("<|return|>", "<|endoftext|>", "<|call|>")),
    "phi3_5_mini_instruct": (PHI_TOKENS, "<|endoftext|>", ("<|end|>", "<|assistant|>", "<|endoftext|>")),
    "hermes_2_pro_tool_use": ((), "<|im_end|>", ("<|im_end|>",)),
    "close_after_text": (PHI_TOKENS, "<|endoftext|>", ("<|end|>", "<|endoftext|>")),
}
#: template -> (close inside a conversation, close at its end, tokenized apart from the reply, empty lists)
CLOSES = {
    "gpt_oss": (["<|end|>"], ["<|return|>"], False, {}),
    "phi3_5_mini_instruct": (["<|end|>", "\n"], ["<|end|>", "\n", "<|endoftext|>"], False, {}),
    "hermes_2_pro_tool_use": (["<|im_end|>", "\n"], ["<|im_end|>", "\n"], False, {"tools": []}),
    "close_after_text": (["\n", "<|end|>", "\n"], ["\n", "<|end|>", "\n"], True, {}),
}


def templated(name: str):
    """Qwen3's tokenizer with ``name``'s template, special tokens and eos."""
    added, eos, _ = TEMPLATES[name]
    tokenizer = models.load_tokenizer(checkpoint("qwen3"))
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in added], special_tokens=True)
    tokenizer.eos_token = eos
    tokenizer.chat_template = (TEMPLATES_DIR / f"{name}.jinja").read_text()
    return tokenizer


def agent_for(name: str, **kwargs) -> HFAgent:
    """Qwen3's random-init model with ``name``'s generation eos ids, ending replies at either end-of-turn id
    about a third of the time."""
    model, _ = loaded("qwen3")
    tokenizer = templated(name)
    encoder = ChatEncoder(tokenizer)
    model = ending_sometimes(model, *sorted(encoder.turn_end_ids))
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(list(TEMPLATES[name][2]))
    return HFAgent(model, tokenizer, **kwargs)


def pieces(tokenizer, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_encoder_learns_both_closes(name):
    tokenizer = templated(name)
    encoder = ChatEncoder(tokenizer)
    inner, final, apart, empty = CLOSES[name]
    assert pieces(tokenizer, encoder.close_ids) == inner and pieces(tokenizer, encoder.final_close_ids) == final
    assert encoder.close_apart == apart and encoder.empty_lists == empty
    # Replies stop at the end-of-turn id of either close; the close inside a conversation follows it.
    ends = {tokenizer.convert_tokens_to_ids(next(t for t in close if t.startswith("<|"))) for close in (inner, final)}
    assert encoder.turn_end_ids == ends and ends <= encoder.stop_ids
    after = inner[inner.index(tokenizer.decode([encoder.end_id])) + 1:]
    for end in encoder.turn_end_ids:
        assert pieces(tokenizer, encoder.close([7, end])) == after
    assert encoder.close([7]) == encoder.close_ids  # cut at max_new_tokens: the whole close
    quirks = encoder.quirks()
    assert quirks["end_of_conversation_close"] == ("".join(final) if name in ("gpt_oss", "phi3_5_mini_instruct")
                                                   else None)
    assert quirks["close_tokenized_apart"] == apart and quirks["empty_lists"] == sorted(empty)


def test_tool_use_templates_render_with_an_empty_tool_list():
    tokenizer = templated("hermes_2_pro_tool_use")
    one = [{"role": "user", "content": "hi"}]
    with pytest.raises(TypeError, match="not iterable"):  # what transformers does without tools
        tokenizer.apply_chat_template(one, tokenize=False, add_generation_prompt=True)
    assert "<tools>  </tools>" in ChatEncoder(tokenizer).render(one, add_generation_prompt=True)
    tool = {"type": "function", "function": {"name": "guess", "description": "Guess a code.",
                                             "parameters": {"type": "object", "properties": {}}}}
    given = ChatEncoder(tokenizer, {"tools": [tool]})  # tools given: used as they are
    assert given.empty_lists == {} and '"name": "guess"' in given.render(one, add_generation_prompt=True)


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_play_token_exactly(name):
    agent = agent_for(name, seed=0, max_new_tokens=6)
    encoder, tokenizer = agent.encoder, agent.tokenizer
    played = rollout(ENVS, agent, max_turns=3)
    worst = max_logprob_error(agent.model, played)
    ended: dict[int, int] = {}
    for t in played:
        system = t.messages[0]["content"] if t.messages[0]["role"] == "system" else None
        runs = agent_runs(t)
        replies = [j for j, m in enumerate(t.messages) if m["role"] == "assistant"]
        for (start, end), (next_start, _), j in zip(runs, runs[1:], replies):
            reply = t.completion_ids[start:end]
            if reply[-1] in encoder.turn_end_ids:
                ended[reply[-1]] = ended.get(reply[-1], 0) + 1
            # What the model is fed after a reply is what the template renders after it (less the end-of-turn
            # id it sampled, which stands for the template's).
            fed = tokenizer.decode(t.completion_ids[end:next_start])
            assert encoder.render(t.messages[: j + 2], add_generation_prompt=True).endswith(fed)
            assert t.completion_ids[end:next_start] == encoder.close(reply) + encoder.delta([t.messages[j + 1]],
                                                                                            system)
            if name == "gpt_oss" and reply[-1] == tokenizer.convert_tokens_to_ids("<|return|>"):
                # The fed <|return|> is where a fresh render (<|end|> inside a conversation) differs, at the latest.
                at = len(t.prompt_ids) + end - 1
                assert t.fresh_render_diff is not None and t.fresh_render_diff <= at
    print(f"{name}: max |log-prob error| {worst:.2e} over {sum(sum(t.agent_mask) for t in played)} agent tokens; "
          f"replies ended by {({tokenizer.decode([i]): n for i, n in ended.items()})}")
    assert worst < 1e-4
    assert set(ended) == set(encoder.turn_end_ids)  # every end-of-turn id was sampled and closed


def test_fresh_render_diff_points_at_the_sampled_return_of_gpt_oss():
    tokenizer = templated("gpt_oss")
    encoder = ChatEncoder(tokenizer)
    returned, end = tokenizer.convert_tokens_to_ids(["<|return|>", "<|end|>"])
    messages = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    final = encoder.encode("<|channel|>final<|message|>")

    def played(first_stop: int) -> list[int]:
        first = final + encoder.encode("a1") + [first_stop]
        return (encoder.prompt(messages[:1]) + first + encoder.close(first) + encoder.delta(messages[2:3])
                + final + encoder.encode("a2") + [returned])

    assert encoder.fresh_render_diff(messages, played(end)) is None  # <|end|> sampled: as a fresh render
    ids = played(returned)
    assert encoder.fresh_render_diff(messages, ids) == ids.index(returned)


def test_a_close_merging_with_the_reply_is_appended_as_its_own_ids():
    encoder = ChatEncoder(templated("close_after_text"))
    close = encoder.encode("\n<|end|>\n")
    assert encoder.close_ids == close
    messages = [{"role": "user", "content": "q"}]
    for text, merges in (("Done.", True), ("Done 42", False)):
        prompt, reply = encoder.prompt(messages), encoder.reply_ids(text)
        ids = prompt + reply + encoder.close(reply)
        body = encoder.encode(text)
        assert ids == prompt + body + close  # the reply's own ids, then the close's
        fresh = encoder.fresh_render_diff([*messages, {"role": "assistant", "content": text}], ids)
        # "." + "\n" are one token in a fresh render: it parts from the sequence at the reply's last token.
        assert fresh == (len(prompt) + len(body) - 1 if merges else None)


@pytest.mark.parametrize("name", TEMPLATES)
def test_expert_transcripts_against_a_fresh_render(name):
    """Text agents' replies are tokenized as in context: phi, hermes and close_after_text agree with a fresh
    render (CodeBreaker's guesses end in a digit, which does not merge with a newline); gpt-oss's fresh
    render puts the channel header ``<|channel|>final<|message|>`` before each reply, which the generation
    prompt leaves to the model."""
    encoder = ChatEncoder(templated(name))
    for t in rollout([EnvSpec(CODE, seed=1), EnvSpec(CODE, seed=2)], ExpertAgent(), max_turns=3, tokenizer=encoder):
        assert (t.fresh_render_diff is not None) == (name == "gpt_oss"), t.fresh_render_diff
        assert t.completion_ids[-1] == encoder.end_id
