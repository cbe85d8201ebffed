"""interplay.scoring.teacher_forced: the same log-likelihoods, hidden states and reply openings as one plain
forward per episode (the paths evaluation, study and RepExp each had), batched, with the model's mode restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplay import models
from interplay.agents import HFAgent
from interplay.rollout import EnvSpec, rollout
from interplay.scoring import teacher_forced


@pytest.fixture(scope="module")
def played():
    torch.manual_seed(0)
    model, tokenizer = models.load("tiny")
    agent = HFAgent(model, tokenizer, temperature=1.0, max_new_tokens=4)
    episodes = rollout(EnvSpec("interplay/CodeBreaker-v0", {"digits": 1, "max_attempts": 3}), agent,
                       seeds=range(5), max_turns=3)
    return model, episodes


def one_by_one(model, t, temperature=1.0):
    """The old per-episode path: one unpadded forward, no attention mask."""
    ids = list(t.prompt_ids) + list(t.completion_ids)
    mask = [0] * len(t.prompt_ids) + list(t.agent_mask)
    with torch.no_grad():
        output = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    logp = torch.log_softmax(output.logits[0, :-1].float() / temperature, -1)
    scored = torch.tensor(mask[1:], dtype=torch.bool)
    log_pi = float(logp[scored].gather(-1, torch.tensor(ids[1:])[scored][:, None]).sum())
    agent = torch.tensor(mask, dtype=torch.bool)
    hidden = output.hidden_states[-1][0][agent].mean(0).numpy()
    starts = [p for p in range(1, len(ids)) if mask[p] and not mask[p - 1]]
    openings = [(int(output.logits[0, p - 1].argmax()), ids[p]) for p in starts]
    return log_pi, int(scored.sum()), hidden, openings


@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_batched_scores_equal_one_forward_per_episode(played, batch_size):
    model, episodes = played
    model.eval()
    forced = teacher_forced(model, [t.prompt_ids for t in episodes], [t.completion_ids for t in episodes],
                            [t.agent_mask for t in episodes], batch_size=batch_size, hidden=True, reply_openings=True)
    for i, t in enumerate(episodes):
        log_pi, tokens, hidden, openings = one_by_one(model, t)
        assert forced.log_likelihood[i] == pytest.approx(log_pi, abs=1e-4)
        assert forced.tokens[i] == tokens == sum(t.agent_mask)
        assert np.allclose(forced.hidden[i], hidden, atol=1e-5)
        assert forced.reply_openings[i] == openings and len(openings) == t.turns
    tempered = teacher_forced(model, [episodes[0].prompt_ids], [episodes[0].completion_ids],
                              [episodes[0].agent_mask], temperature=0.5)
    assert tempered.log_likelihood[0] == pytest.approx(one_by_one(model, episodes[0], 0.5)[0], abs=1e-4)
    assert tempered.hidden is None and tempered.reply_openings is None


@pytest.mark.parametrize("training", [True, False])
def test_the_models_mode_is_restored(played, training):
    model, episodes = played
    model.train(training)
    seen = []
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    try:
        teacher_forced(model, [t.prompt_ids for t in episodes], [t.completion_ids for t in episodes],
                       [t.agent_mask for t in episodes], batch_size=2)
    finally:
        handle.remove()
    assert seen and not any(seen)  # scored in eval mode: no dropout
    assert model.training is training


def test_evaluation_and_study_read_the_same_scores(played):
    from interplay.evaluation import sequence_log_likelihood

    model, episodes = played
    model.train()
    forced = sequence_log_likelihood(model, episodes, batch_size=3)
    assert model.training
    assert forced == pytest.approx([one_by_one(model.eval(), t)[0] for t in episodes], abs=1e-4)
    with pytest.raises(ValueError, match="one agent mark per completion id"):
        teacher_forced(model, [[1, 2]], [[3, 4]], [[1]])
