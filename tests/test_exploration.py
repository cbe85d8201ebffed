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
    shaper = OutcomeCountBonus(weight=0.5, baseline="none", target="reward")
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


def test_outcome_count_defaults_are_ucb_con_on_the_advantage():
    # Song et al.: objective Â_i + c·(b_ucb − b0), UCB-Con with b0 = 0.5 their best variant.
    shaper = OutcomeCountBonus()
    assert (shaper.weight, shaper.baseline, shaper.b0, shaper.target) == (0.1, "constant", 0.5, "advantage")
    g = group(["4", "4", "4", "4", "4", "7", "7", "ok"])  # counts 4→5, 7→2, ok→1
    b = shaper.bonus(g)
    expected = [1 / math.sqrt(5) - 0.5] * 5 + [1 / math.sqrt(2) - 0.5] * 2 + [0.5]
    assert b.tolist() == pytest.approx(expected)
    assert b[0] < 0 < b[5]  # an outcome seen more than 4 times is penalized, one seen twice still rewarded
    # On the advantage: the rewards GRPO normalizes are left alone, the bonus comes back separately.
    rewards = np.array([0, 0, 0, 0, 0, 0, 0, 1.0])
    assert OutcomeCountBonus().shape(rewards, g).tolist() == rewards.tolist()
    total, parts = apply_shapers(rewards, g, [OutcomeCountBonus(weight=0.2)], return_components=True)
    assert total.tolist() == rewards.tolist()
    assert parts["advantage"].tolist() == pytest.approx([0.2 * e for e in expected])
    assert parts["outcome_count"].tolist() == pytest.approx([0.2 * e for e in expected])
    # UCB-Mean: minus the group's mean bonus.
    ucb = [1 / math.sqrt(2), 1 / math.sqrt(2), 1.0, 1.0]
    mean = OutcomeCountBonus(baseline="mean").bonus(group(["a", "a", "b", "c"]))
    assert mean.tolist() == pytest.approx([u - sum(ucb) / 4 for u in ucb])
    with pytest.raises(ValueError, match="baseline must be one of"):
        OutcomeCountBonus(baseline="median")
    with pytest.raises(ValueError, match="target must be one of"):
        OutcomeCountBonus(target="loss")


def test_batch_diversity_bonus_matches_loop():
    outcomes = ["a", "b", "a", "a", "c", "b"]
    expected = [-sum(outcomes[i] == outcomes[j] for j in range(6) if j != i) / 6 for i in range(6)]
    assert BatchDiversityBonus().bonus(group(outcomes)).tolist() == pytest.approx(expected)
    assert expected[0] == -2 / 6 and expected[4] == 0.0
    assert BatchDiversityBonus().target == "advantage"  # Song et al.: Â_i + c·b_batch,i
    assert BatchDiversityBonus(weight=2.0).shape(np.ones(6), group(outcomes)).tolist() == [1.0] * 6
    total, parts = apply_shapers(np.ones(6), group(outcomes), [BatchDiversityBonus(weight=2.0)], return_components=True)
    assert total.tolist() == [1.0] * 6 and parts["advantage"].tolist() == pytest.approx([2 * e for e in expected])
    shaped = BatchDiversityBonus(weight=2.0, target="reward").shape(np.ones(6), group(outcomes))
    assert shaped.tolist() == pytest.approx([1 + 2 * e for e in expected])
    # G = 8 identical outcomes: each −7/8.
    assert BatchDiversityBonus().bonus(group(["x"] * 8)).tolist() == pytest.approx([-7 / 8] * 8)


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
    centered = h - h.mean(0)
    got = RepExpBonus(lam=0.5, proj_dim=None, leave_one_out=leave_one_out).bonus(g)
    assert got.tolist() == pytest.approx(loop_elliptical(centered, 0.5, leave_one_out), rel=1e-8)
    raw = RepExpBonus(lam=0.5, proj_dim=None, leave_one_out=leave_one_out, center=False).bonus(g)
    assert raw.tolist() == pytest.approx(loop_elliptical(h, 0.5, leave_one_out), rel=1e-8)
    unit = h / np.linalg.norm(h, axis=1, keepdims=True)
    normed = RepExpBonus(lam=0.5, proj_dim=None, leave_one_out=leave_one_out, center=False, normalize=True).bonus(g)
    assert normed.tolist() == pytest.approx(loop_elliptical(unit, 0.5, leave_one_out), rel=1e-8)


def test_repexp_defaults_follow_the_authors_recipe():
    # Tuyls et al.'s runs: leverage score of group-centered, sparse-projected (32) vectors, λ = 0.01, β = 0.01,
    # added to the reward before GRPO's normalization, off for groups without a success.
    shaper = RepExpBonus()
    assert (shaper.lam, shaper.weight, shaper.proj_dim) == (0.01, 0.01, 32)
    assert not shaper.leave_one_out and shaper.center and not shaper.normalize and shaper.target == "reward"
    # By hand: [2, 0] and [0, 0] center to ±e1, V = λI + 2 e1e1ᵀ, so each leverage is 1/(2 + λ);
    # leave-one-out, 1/(1 + λ).
    h = np.array([[2.0, 0.0], [0.0, 0.0]])
    assert RepExpBonus(proj_dim=None).bonus(group(["ok", "x"], hidden=h)).tolist() == pytest.approx([1 / 2.01] * 2)
    loo = RepExpBonus(proj_dim=None, leave_one_out=True).bonus(group(["ok", "x"], hidden=h))
    assert loo.tolist() == pytest.approx([1 / 1.01] * 2)
    # Three responses, two alike: centered they lie on u = (e1 − e2)/√2 with squared lengths 2/9, 2/9, 8/9, so
    # V = λI + (4/3) uuᵀ and b_i = a_i² / (λ + 4/3): the unlike one has 4 times the others' bonus.
    h = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    b = RepExpBonus(proj_dim=None).bonus(group(["ok", "x", "y"], hidden=h))
    assert b.tolist() == pytest.approx([(2 / 9) / (0.01 + 4 / 3)] * 2 + [(8 / 9) / (0.01 + 4 / 3)])
    shaped = RepExpBonus(proj_dim=None).shape(np.array([1.0, 0.0, 0.0]), group(["ok", "x", "y"], hidden=h))
    assert shaped.tolist() == pytest.approx([1 + 0.01 * b[0], 0.01 * b[1], 0.01 * b[2]])
    assert shaper.bonus(group(["x", "y", "z"], hidden=h)).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="needs GroupInfo.hidden"):
        shaper.bonus(group(["ok"]))


def test_repexp_draws_a_fresh_seeded_projection_per_group():
    h = np.random.default_rng(1).normal(size=(4, 256))
    first, again = group(["ok", "a", "b", "c"], hidden=h), group(["ok", "a", "b", "c"], hidden=h)
    shaper = RepExpBonus(proj_dim=16, seed=3)
    b1 = shaper.bonus(first)
    p1 = shaper.projection.copy()
    assert shaper.bonus(again).tolist() == b1.tolist()  # the same seed, step and task: the same projection
    later = GroupInfo(task_key=first.task_key, outcomes=first.outcomes, successes=first.successes, hidden=h, step=5)
    shaper.bonus(later)
    assert not np.array_equal(shaper.projection, p1)  # another step: a fresh projection
    assert RepExpBonus(proj_dim=16, seed=3).bonus(first).tolist() == b1.tolist()  # seeded
    with pytest.raises(ValueError, match="representation must be one of"):
        RepExpBonus(representation="frozen")


def test_repexp_projection_is_seeded_and_fixed():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(4, 256))
    g = group(["ok", "a", "b", "c"], hidden=h)
    a, b, c = (RepExpBonus(proj_dim=16, seed=s, fresh_projection=False) for s in (3, 3, 4))
    assert a.bonus(g).tolist() == b.bonus(g).tolist()
    assert a.bonus(g).tolist() != c.bonus(g).tolist()
    assert np.array_equal(a.projection, sparse_random_projection(256, 16, seed=3))
    projected = h @ a.projection
    assert a.bonus(g).tolist() == pytest.approx(loop_elliptical(projected - projected.mean(0), 0.01, False), rel=1e-6)
    big = sparse_random_projection(400, 2000, seed=0)
    assert (big != 0).mean() == pytest.approx(1 / 20, rel=0.05)  # density 1/√D
    x = np.random.default_rng(2).normal(size=400)
    assert np.linalg.norm(x @ big) ** 2 / np.linalg.norm(x) ** 2 == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError, match="hidden size changed"):
        a.bonus(group(["ok", "a"], hidden=np.ones((2, 8))))


def subsets_max(r, idx, k):
    """Mean over the k-subsets of the indices ``idx`` of the subset's max reward (0 for k = 0)."""
    if k == 0:
        return 0.0
    subsets = list(itertools.combinations(idx, k))
    return sum(max(r[j] for j in s) for s in subsets) / len(subsets)


def brute_pkpo(r: list[int], k: int, estimator: str = "s") -> list[float]:
    """The paper's per-sample weights from their subset definitions: s_i averages max(r_I) over the k-subsets
    I ∋ i (weight 1/C(n,k) each); the baselines are (k/n) × the mean max over the k-subsets (loo) or the
    (k−1)-subsets (loo-1) of the other n−1 samples."""
    n = len(r)
    out = []
    for i in range(n):
        s = sum(max(r[j] for j in sub) for sub in itertools.combinations(range(n), k) if i in sub) / math.comb(n, k)
        others = [j for j in range(n) if j != i]
        base = {"s": 0.0, "loo": subsets_max(r, others, k) if estimator == "loo" else 0.0,
                "loo-1": subsets_max(r, others, k - 1)}[estimator]
        out.append(s - k / n * base)
    return out


@pytest.mark.parametrize("estimator", ["s", "loo", "loo-1"])
def test_pkpo_matches_brute_force(estimator):
    rng = np.random.default_rng(2)
    for _ in range(60):
        n = int(rng.integers(2, 9))
        k = int(rng.integers(1, n + (estimator != "loo")))
        r = [int(v) for v in rng.random(n) < rng.random()]
        shaped = PKPOTransform(k=k, estimator=estimator).shape(np.array(r, float), group(["o"] * n))
        assert shaped.tolist() == pytest.approx([v * n / k for v in brute_pkpo(r, k, estimator)], abs=1e-12)
        if estimator == "s":
            assert sum(brute_pkpo(r, k)) == pytest.approx(k * pass_at_k(n, sum(r), k))  # Σ_i s_i = k·ρ(n, c, k)
            assert shaped.mean() == pytest.approx(pass_at_k(n, sum(r), k))
    for estimator_k1 in ("s", "loo-1"):  # k = 1: the rewards themselves
        one = PKPOTransform(k=1, estimator=estimator_k1).shape(np.array([1.0, 0.0, 1.0]), group(["a", "b", "c"]))
        assert one.tolist() == [1.0, 0.0, 1.0]


def test_pkpo_estimators_by_hand():
    g4 = group(["a", "b", "c", "d"])
    r = np.array([1.0, 0.0, 0.0, 0.0])  # n = 4, c = 1, k = 2
    # s: failure ρ(3, 1, 1) = 1/3.  loo-1: success 1 − ρ(3, 0, 1) = 1, failure 0.
    # loo: success 1 − ρ(3, 0, 2) = 1, failure 1/3 − ρ(3, 1, 2) = 1/3 − 2/3.
    assert PKPOTransform(k=2, estimator="s").shape(r, g4).tolist() == pytest.approx([1, 1 / 3, 1 / 3, 1 / 3])
    assert PKPOTransform(k=2).shape(r, g4).tolist() == pytest.approx([1, 0, 0, 0])
    assert PKPOTransform(k=2, estimator="loo").shape(r, g4).tolist() == pytest.approx([1, -1 / 3, -1 / 3, -1 / 3])
    # G = 8, k = 4, c = 5: every 3 others of a failure hold a success, so s is flat; loo-1 gives a success
    # 1 − ρ(7, 4, 3) = C(3, 3)/C(7, 3) = 1/35 and a failure 0.
    g8 = group(list("abcdefgh"))
    r8 = np.array([1.0] * 5 + [0.0] * 3)
    assert PKPOTransform(k=4, estimator="s").shape(r8, g8).tolist() == pytest.approx([1.0] * 8)
    assert PKPOTransform(k=4).shape(r8, g8).tolist() == pytest.approx([1 / 35] * 5 + [0.0] * 3)
    assert PKPOTransform().estimator == "loo-1" and PKPOTransform().schedule == "switch"


@pytest.mark.parametrize("estimator", ["s", "loo", "loo-1"])
def test_pkpo_gradient_is_unbiased_for_pass_at_k(estimator):
    # Bernoulli policy with success probability p: enumerate every batch of n samples exactly.
    n, k, p = 5, 3, 0.3
    expected_grad = 0.0
    for r in itertools.product([0, 1], repeat=n):
        prob = p ** sum(r) * (1 - p) ** (n - sum(r))
        shaper = PKPOTransform(k=k, estimator=estimator)
        shaped = shaper.shape(np.array(r, float), group(["o"] * n)) * k / n  # back to the paper's scale
        score = [1 / p if ri else -1 / (1 - p) for ri in r]  # d/dp log π(sample)
        expected_grad += prob * sum(s * g for s, g in zip(shaped, score))
    assert expected_grad == pytest.approx(k * (1 - p) ** (k - 1))  # d/dp [1 − (1−p)^k]


def test_pkpo_annealing_and_errors():
    switch = PKPOTransform(k=8, k_end=1, anneal_steps=70)  # train with k = 8, then k = 1
    assert [switch.k_at(s) for s in (0, 10, 69, 70, 1000)] == [8, 8, 8, 1, 1]
    linear = PKPOTransform(k=8, k_end=1, anneal_steps=70, schedule="linear")
    assert [linear.k_at(s) for s in (0, 10, 35, 70, 1000)] == [8, 7, 4, 1, 1]
    assert PKPOTransform(k=4).k_at(123) == 4
    g4 = group(["a", "b", "c", "d"], step=0)
    with pytest.raises(ValueError, match="exceeds the group size 4"):
        switch.shape(np.zeros(4), g4)
    assert switch.shape(np.array([1.0, 0, 0, 0]), group(["a", "b", "c", "d"], step=70)).tolist() == [1, 0, 0, 0]
    with pytest.raises(ValueError, match="binary rewards"):
        PKPOTransform(k=2).shape(np.array([0.5, 1.0, 0.0, 0.0]), g4)
    with pytest.raises(ValueError, match="needs k ≤ n − 1"):
        PKPOTransform(k=4, estimator="loo").shape(np.array([1.0, 0, 0, 0]), g4)
    with pytest.raises(ValueError, match="k must be an int ≥ 1"):
        PKPOTransform(k=0)
    with pytest.raises(ValueError, match="estimator must be one of"):
        PKPOTransform(estimator="rloo")
    with pytest.raises(ValueError, match="schedule must be one of"):
        PKPOTransform(schedule="cosine")


def test_build_and_apply_compose_transform_then_bonuses():
    config = ExplorationConfig(methods=["batch_diversity", "pkpo", "outcome_count"],
                               weights={"outcome_count": 0.2, "batch_diversity": 0.1}, params={"pkpo": {"k": 2}})
    shapers = build_shapers(config)
    assert [s.name for s in shapers] == ["batch_diversity", "pkpo", "outcome_count"]
    assert all(isinstance(s, Shaper) for s in shapers)
    g = group(["ok", "3", "3", "5"])
    rewards = np.array([1.0, 0.0, 0.0, 0.0])
    total, parts = apply_shapers(rewards, g, shapers, return_components=True)
    transformed = [1.0, 0.0, 0.0, 0.0]  # loo-1, k = 2: success 1 − ρ(3, 0, 1) = 1, failures 0
    diversity = [0.0, -0.25, -0.25, 0.0]
    ucb = [1.0 - 0.5, 1 / math.sqrt(2) - 0.5, 1 / math.sqrt(2) - 0.5, 1.0 - 0.5]  # UCB-Con, b0 = 0.5
    # Both outcome-based bonuses go onto the advantages: the rewards are the transformed ones alone.
    assert total.tolist() == pytest.approx(transformed)
    assert parts["advantage"].tolist() == pytest.approx([0.1 * d + 0.2 * u for d, u in zip(diversity, ucb)])
    assert parts["transformed"].tolist() == pytest.approx(transformed)
    assert parts["outcome_count"].tolist() == pytest.approx([0.2 * u for u in ucb])
    # A reward-level bonus is added to the rewards instead.
    reward_level = build_shapers(ExplorationConfig(methods=["batch_diversity"], weights={"batch_diversity": 0.1},
                                                   params={"batch_diversity": {"target": "reward"}}))
    together, parts = apply_shapers(rewards, g, reward_level, return_components=True)
    assert together.tolist() == pytest.approx([r + 0.1 * d for r, d in zip(rewards, diversity)])
    assert parts["advantage"].tolist() == [0.0] * 4
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
