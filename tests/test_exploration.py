"""Exploration shapers: each bonus against its formula computed by explicit loops, PKPO against brute force."""

import itertools
import math

import numpy as np
import pytest

from interplay.metrics import pass_at_k
from interplay.training.exploration import (
    BatchDiversityBonus,
    ExplorationConfig,
    GroupInfo,
    OutcomeCountBonus,
    PKPOTransform,
    RepExpBonus,
    Shaper,
    apply_shapers,
    build_shapers,
    sparse_random_projection,
)


def group(outcomes, successes=None, **kwargs) -> GroupInfo:
    successes = [o == "ok" for o in outcomes] if successes is None else successes
    return GroupInfo(task_key=kwargs.pop("task_key", "t"), outcomes=outcomes, successes=successes, **kwargs)


def test_outcome_count_bonus_counts_batch_first_and_persists():
    shaper = OutcomeCountBonus(weight=0.5)
    g = group(["4", "4", "7", "ok"])
    # counts after this group: 4→2, 7→1, ok→1
    assert shaper.bonus(g).tolist() == pytest.approx([1 / math.sqrt(2), 1 / math.sqrt(2), 1.0, 1.0])
    # second call: 4→3, 7→2; the count lives across calls
    assert shaper.bonus(group(["4", "7"])).tolist() == pytest.approx([1 / math.sqrt(3), 1 / math.sqrt(2)])
    assert shaper.count("t", "4") == 3 and shaper.count("t", "never") == 0
    # other tasks have their own counts
    assert shaper.bonus(group(["4"], task_key="other")).tolist() == [1.0]
    shaped = shaper.shape(np.array([1.0, 0.0]), group(["ok", "9"]))
    assert shaped.tolist() == pytest.approx([1.0 + 0.5 / math.sqrt(2), 0.5])
    restored = OutcomeCountBonus()
    restored.load_state_dict(shaper.state_dict())
    assert restored.counts == shaper.counts and restored.counts is not shaper.counts


def test_batch_diversity_bonus_matches_loop():
    outcomes = ["a", "b", "a", "a", "c", "b"]
    expected = [-sum(outcomes[i] == outcomes[j] for j in range(6) if j != i) / 6 for i in range(6)]
    assert BatchDiversityBonus().bonus(group(outcomes)).tolist() == pytest.approx(expected)
    assert expected[0] == -2 / 6 and expected[4] == 0.0
    shaped = BatchDiversityBonus(weight=2.0).shape(np.ones(6), group(outcomes))
    assert shaped.tolist() == pytest.approx([1 + 2 * e for e in expected])


def loop_elliptical(h: np.ndarray, lam: float, leave_one_out: bool) -> list[float]:
    out = []
    for i in range(len(h)):
        cov = lam * np.eye(h.shape[1])
        for j in range(len(h)):
            if j != i or not leave_one_out:
                cov += np.outer(h[j], h[j])
        out.append(float(h[i] @ np.linalg.inv(cov) @ h[i]))
    return out


@pytest.mark.parametrize("leave_one_out", [True, False])
def test_repexp_matches_explicit_inverse(leave_one_out):
    rng = np.random.default_rng(0)
    h = rng.normal(size=(6, 10))
    g = group(["ok", "x", "y", "z", "w", "v"], hidden=h)
    unit = h / np.linalg.norm(h, axis=1, keepdims=True)
    got = RepExpBonus(lam=0.5, leave_one_out=leave_one_out).bonus(g)
    assert got.tolist() == pytest.approx(loop_elliptical(unit, 0.5, leave_one_out), rel=1e-8)
    raw = RepExpBonus(lam=0.5, leave_one_out=leave_one_out, normalize=False).bonus(g)
    assert raw.tolist() == pytest.approx(loop_elliptical(h, 0.5, leave_one_out), rel=1e-8)


def test_repexp_defaults_novelty_and_off_without_success():
    shaper = RepExpBonus()
    assert shaper.lam == 0.01 and shaper.weight == 0.01 and shaper.leave_one_out
    h = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    b = shaper.bonus(group(["ok", "x", "y"], hidden=h))
    assert b[2] > 10 * b[0]  # the response unlike the others is the novel one
    assert b[2] == pytest.approx(loop_elliptical(h, 0.01, True)[2]) and b[2] <= 1 / 0.01
    assert shaper.bonus(group(["x", "y", "z"], hidden=h)).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="needs GroupInfo.hidden"):
        shaper.bonus(group(["ok"]))


def test_repexp_projection_is_seeded_and_fixed():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(4, 256))
    g = group(["ok", "a", "b", "c"], hidden=h)
    a, b, c = RepExpBonus(proj_dim=16, seed=3), RepExpBonus(proj_dim=16, seed=3), RepExpBonus(proj_dim=16, seed=4)
    assert a.bonus(g).tolist() == b.bonus(g).tolist()
    assert a.bonus(g).tolist() != c.bonus(g).tolist()
    assert np.array_equal(a.projection, sparse_random_projection(256, 16, seed=3))
    projected = h @ a.projection
    unit = projected / np.linalg.norm(projected, axis=1, keepdims=True)
    assert a.bonus(g).tolist() == pytest.approx(loop_elliptical(unit, 0.01, True), rel=1e-6)
    big = sparse_random_projection(400, 2000, seed=0)
    assert (big != 0).mean() == pytest.approx(1 / 20, rel=0.05)  # density 1/√D
    x = np.random.default_rng(2).normal(size=400)
    assert np.linalg.norm(x @ big) ** 2 / np.linalg.norm(x) ** 2 == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError, match="hidden size changed"):
        a.bonus(group(["ok", "a"], hidden=np.ones((2, 8))))


def brute_pkpo(r: list[int], k: int) -> list[float]:
    """The paper's per-sample reward: average over k-subsets containing i of the subset's max."""
    n = len(r)
    out = []
    for i in range(n):
        total = sum(max(r[j] for j in s) for s in itertools.combinations(range(n), k) if i in s)
        out.append(total / math.comb(n, k))
    return out


def test_pkpo_matches_brute_force_and_mean_is_pass_at_k():
    rng = np.random.default_rng(2)
    for _ in range(60):
        n = int(rng.integers(1, 9))
        k = int(rng.integers(1, n + 1))
        r = [int(v) for v in rng.random(n) < rng.random()]
        shaped = PKPOTransform(k=k).shape(np.array(r, float), group(["o"] * n))
        raw = brute_pkpo(r, k)
        assert shaped.tolist() == pytest.approx([v * n / k for v in raw], abs=1e-12)  # paper's rewards × n/k
        assert sum(raw) == pytest.approx(k * pass_at_k(n, sum(r), k))  # paper's Σ_i r̃_i = k·ρ(n, c, k)
        assert shaped.mean() == pytest.approx(pass_at_k(n, sum(r), k))
    assert PKPOTransform(k=1).shape(np.array([1.0, 0.0, 1.0]), group(["a", "b", "c"])).tolist() == [1.0, 0.0, 1.0]


def test_pkpo_gradient_is_unbiased_for_pass_at_k():
    # Bernoulli policy with success probability p: enumerate every batch of n samples exactly.
    n, k, p = 5, 3, 0.3
    expected_grad = 0.0
    for r in itertools.product([0, 1], repeat=n):
        prob = p ** sum(r) * (1 - p) ** (n - sum(r))
        shaped = PKPOTransform(k=k).shape(np.array(r, float), group(["o"] * n)) * k / n  # back to the paper's scale
        score = [1 / p if ri else -1 / (1 - p) for ri in r]  # d/dp log π(sample)
        expected_grad += prob * sum(s * g for s, g in zip(shaped, score))
    assert expected_grad == pytest.approx(k * (1 - p) ** (k - 1))  # d/dp [1 − (1−p)^k]


def test_pkpo_annealing_and_errors():
    shaper = PKPOTransform(k=8, k_end=1, anneal_steps=70)
    assert [shaper.k_at(s) for s in (0, 10, 35, 70, 1000)] == [8, 7, 4, 1, 1]
    assert PKPOTransform(k=4).k_at(123) == 4
    g4 = group(["a", "b", "c", "d"], step=0)
    with pytest.raises(ValueError, match="exceeds the group size 4"):
        shaper.shape(np.zeros(4), g4)
    assert shaper.shape(np.array([1.0, 0, 0, 0]), group(["a", "b", "c", "d"], step=70)).tolist() == [1, 0, 0, 0]
    with pytest.raises(ValueError, match="binary rewards"):
        PKPOTransform(k=2).shape(np.array([0.5, 1.0, 0.0, 0.0]), g4)
    with pytest.raises(ValueError, match="k must be an int ≥ 1"):
        PKPOTransform(k=0)


def test_build_and_apply_compose_transform_then_bonuses():
    config = ExplorationConfig(methods=["batch_diversity", "pkpo", "outcome_count"],
                               weights={"outcome_count": 0.2, "batch_diversity": 0.1}, params={"pkpo": {"k": 2}})
    shapers = build_shapers(config)
    assert [s.name for s in shapers] == ["batch_diversity", "pkpo", "outcome_count"]
    assert all(isinstance(s, Shaper) for s in shapers)
    g = group(["ok", "3", "3", "5"])
    rewards = np.array([1.0, 0.0, 0.0, 0.0])
    total, parts = apply_shapers(rewards, g, shapers, return_components=True)
    transformed = [1.0, 1 / 3, 1 / 3, 1 / 3]  # ρ(3, 1, 1) = 1/3 for each failure
    diversity = [0.0, -0.25, -0.25, 0.0]
    ucb = [1.0, 1 / math.sqrt(2), 1 / math.sqrt(2), 1.0]
    expected = [t + 0.1 * d + 0.2 * u for t, d, u in zip(transformed, diversity, ucb)]
    assert total.tolist() == pytest.approx(expected)
    assert parts["transformed"].tolist() == pytest.approx(transformed)
    assert parts["outcome_count"].tolist() == pytest.approx([0.2 * u for u in ucb])
    assert shapers[2].count("t", "3") == 2  # the bonus counted the group exactly once
    assert apply_shapers(rewards, g, []).tolist() == rewards.tolist()


@pytest.mark.parametrize(("config", "message"), [
    (ExplorationConfig(methods=["ucb"]), "unknown exploration method 'ucb'"),
    (ExplorationConfig(methods=["pkpo"], weights={"pkpo": 1.0}), "transform and takes no weight"),
    (ExplorationConfig(methods=["repexp"], params={"repexp": {"lambda": 1}}), "unknown parameters \\['lambda'\\]"),
    (ExplorationConfig(methods=["repexp"], weights={"outcome_count": 1}), "not in methods"),
    (ExplorationConfig(methods=["pkpo", "pkpo"]), "twice"),
])
def test_build_shapers_rejects_bad_config(config, message):
    with pytest.raises(ValueError, match=message):
        build_shapers(config)


def test_group_info_validation():
    with pytest.raises(ValueError, match="successes has 1"):
        GroupInfo(task_key=0, outcomes=["a", "b"], successes=[True])
    with pytest.raises(ValueError, match="shape \\[G=2, D\\]"):
        GroupInfo(task_key=0, outcomes=["a", "b"], successes=[True, False], hidden=np.ones(2))
    with pytest.raises(ValueError, match="shape \\[G=2\\]"):
        apply_shapers(np.ones(3), GroupInfo(task_key=0, outcomes=["a", "b"], successes=[True, False]), [])
