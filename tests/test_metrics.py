"""Evaluation math: pass@k against brute force, coverage conventions, profiles, success by turn."""

import itertools
import math
import random

import numpy as np
import pytest

from interplay.metrics import (
    DEFAULT_COVERAGE_GRID,
    compare_pass_at_k,
    coverage_profile,
    distinct_outcomes,
    log_ratio_quantiles,
    mean_interval,
    mean_token_entropy,
    pass_at_k,
    pass_at_k_curve,
    per_task_pass_at_k,
    success_by_turn,
    success_histogram,
    success_profile,
    success_rates,
    token_entropy,
)


def brute_pass_at_k(outcomes: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(outcomes, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_brute_force_over_all_subsets():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 9)
        outcomes = [rng.random() < rng.random() for _ in range(n)]
        k = rng.randint(1, n)
        assert pass_at_k(n, sum(outcomes), k) == pytest.approx(brute_pass_at_k(outcomes, k), abs=1e-12)


def test_pass_at_k_large_n_is_stable_and_exact():
    n = 10_000
    for c, k in [(1, 1), (1, 100), (37, 50), (5000, 100), (9999, 2)]:
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)  # Python big ints: exact ratio
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9)
    assert pass_at_k(n, 0, 500) == 0.0
    assert pass_at_k(n, n, 1) == 1.0
    assert pass_at_k(10**7, 1, 1) == pytest.approx(1e-7, rel=1e-9)


@pytest.mark.parametrize(("args", "message"), [
    ((5, 2, 6), "k must satisfy"),
    ((5, 6, 1), "c \\(successes\\)"),
    ((5, -1, 1), "c \\(successes\\)"),
    ((0, 0, 1), "n \\(samples"),
    ((5, 2, 0), "k must satisfy"),
])
def test_pass_at_k_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(*args)
    with pytest.raises(TypeError, match="must be an int"):
        pass_at_k(5, 2.0, 1)


def test_pass_at_k_curve_is_monotone_and_averages_tasks():
    rng = np.random.default_rng(1)
    tasks = [list(rng.random(8) < p) for p in rng.random(30)]
    curve = pass_at_k_curve(tasks)
    assert list(curve) == list(range(1, 9))
    values = list(curve.values())
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
    assert curve[1] == pytest.approx(np.mean([np.mean(t) for t in tasks]))
    assert curve[3] == pytest.approx(np.mean([brute_pass_at_k(t, 3) for t in tasks]))
    # counts with n give the same curve as booleans
    assert pass_at_k_curve([int(sum(t)) for t in tasks], n=8) == pytest.approx(curve)


def test_pass_at_k_curve_differing_n_per_task():
    tasks = [[True, False], [False, False, True, True]]
    curve = pass_at_k_curve(tasks)
    assert list(curve) == [1, 2]  # k only up to the smallest n
    assert curve[2] == pytest.approx((1.0 + brute_pass_at_k(tasks[1], 2)) / 2)
    assert pass_at_k_curve([1, 2], n=[2, 4]) == pytest.approx(curve)
    with pytest.raises(ValueError, match="fewest samples"):
        pass_at_k_curve(tasks, ks=[3])
    with pytest.raises(ValueError, match="n was not given"):
        pass_at_k_curve([1, 2])


def test_mean_interval_normal_and_bootstrap():
    rng = np.random.default_rng(2)
    x = (rng.random(100) < 0.5).astype(float)
    normal = mean_interval(x)
    assert normal.stderr == pytest.approx(x.std(ddof=1) / 10)
    assert normal.high - normal.mean == pytest.approx(1.959964 * normal.stderr, rel=1e-5)
    assert 0.045 < normal.stderr < 0.055  # 100 tasks ≈ ±5 points standard error (√(0.25/100))
    boot = mean_interval(x, method="bootstrap", n_boot=4000)
    assert boot.low == pytest.approx(normal.low, abs=0.02) and boot.high == pytest.approx(normal.high, abs=0.02)
    assert mean_interval(x, method="bootstrap", seed=3) == mean_interval(x, method="bootstrap", seed=3)
    with pytest.raises(ValueError, match="'normal', 't' or 'bootstrap'"):
        mean_interval(x, method="student")


def test_compare_pass_at_k_is_paired():
    rng = np.random.default_rng(4)
    difficulty = rng.random(200)
    a = [list(rng.random(8) < p) for p in difficulty]
    b = [list(rng.random(8) < min(1.0, p + 0.1)) for p in difficulty]
    diff = compare_pass_at_k(a, b, k=1)
    per_task = per_task_pass_at_k(b, 1) - per_task_pass_at_k(a, 1)
    assert diff.mean == pytest.approx(per_task.mean())
    assert diff.low > 0  # a real improvement on the same tasks is detected
    with pytest.raises(ValueError, match="same tasks"):
        compare_pass_at_k(a, b[:10], k=1)


def test_coverage_of_expert_copying_agent_is_zero_above_one():
    log_mu = np.zeros(50)  # deterministic expert
    profile = coverage_profile(log_mu, np.zeros(50))
    assert profile[1] == 1.0
    assert all(v == 0.0 for n, v in profile.items() if n > 1)
    assert coverage_profile(0.0, np.full(5, -1e-9))[2] == 0.0  # scalar log μ broadcasts


def test_coverage_known_small_case():
    log_pi = np.log([1.0, 0.6, 0.3, 0.05]) + 0.0  # deterministic expert: log μ = 0
    profile = coverage_profile(0.0, log_pi, grid=[1, 2, 4, 16, 32])
    # ratios μ/π: 1, 1.67, 3.33, 20
    assert profile == {1: 1.0, 2: 0.5, 4: 0.25, 16: 0.25, 32: 0.0}
    # stochastic expert and π = 0 somewhere (−inf: never covered)
    profile = coverage_profile(np.log([0.5, 0.5]), np.array([np.log(0.5), -np.inf]), grid=[1, 2, 2**1024])
    assert profile == {1: 1.0, 2: 0.5, 2**1024: 0.5}


def test_coverage_weights_tasks_equally_and_default_grid_reaches_long_episodes():
    # task "a" has 3 samples all covered, task "b" one uncovered sample
    profile = coverage_profile(0.0, [0.0, 0.0, 0.0, -10.0], grid=[2], task_ids=["a", "a", "a", "b"])
    assert profile[2] == 0.5
    assert coverage_profile(0.0, [0.0, 0.0, 0.0, -10.0], grid=[2])[2] == 0.25
    assert max(DEFAULT_COVERAGE_GRID) == 2**64 and float(max(DEFAULT_COVERAGE_GRID)) < math.inf
    profile = coverage_profile(0.0, [-30.0])  # 100 agent tokens at 0.3 nats/token: ~2^43
    assert profile[2**32] == 1.0 and profile[2**48] == 0.0


def test_coverage_rejects_losses_and_nan():
    with pytest.raises(ValueError, match="not negative log-likelihoods"):
        coverage_profile(0.0, [3.2, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        coverage_profile(0.0, [np.nan])
    with pytest.raises(ValueError, match="N ≥ 1"):
        coverage_profile(0.0, [-1.0], grid=[0.5])


def test_log_ratio_quantiles_agree_with_profile():
    rng = np.random.default_rng(5)
    log_pi = -rng.exponential(5.0, size=1001)
    q = log_ratio_quantiles(0.0, log_pi, quantiles=[0.5])
    median = q[0.5]
    assert coverage_profile(0.0, log_pi, grid=[math.exp(median)])[math.exp(median)] == pytest.approx(0.5, abs=1e-3)


def test_success_profile_and_histogram():
    p_hat = success_rates([[True, True], [True, False], [False, False], [False, True]])
    assert p_hat.tolist() == [1.0, 0.5, 0.0, 0.5]
    assert success_profile(p_hat, grid=[1, 2, 4]) == {1: 0.25, 2: 0.75, 4: 0.75}
    p_thirds = success_rates([1, 2, 3], n=3)
    assert success_profile(p_thirds, grid=[3])[3] == 1.0  # 1/3 ≥ 1/3 despite float rounding
    counts, edges = success_histogram(p_hat, bins=2)
    assert counts.tolist() == [1, 3] and edges.tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        success_profile([1.5])


def test_success_by_turn():
    turns = [1, 3, None, 2, 1, None, 5, 3]
    assert success_by_turn(turns, max_turn=4) == [2 / 8, 3 / 8, 5 / 8, 5 / 8]
    assert success_by_turn(turns) == [2 / 8, 3 / 8, 5 / 8, 5 / 8, 6 / 8]
    assert success_by_turn([None, None]) == [0.0]
    with pytest.raises(ValueError, match="int ≥ 1 or None"):
        success_by_turn([0])


def test_distinct_outcomes_and_entropy():
    assert distinct_outcomes([["4", "4", "5"], ["x"], []]).tolist() == [2, 1, 0]
    with pytest.raises(TypeError, match="sequence of outcome strings"):
        distinct_outcomes(["abc"])
    uniform = token_entropy(np.zeros((3, 4)))
    assert uniform == pytest.approx([math.log(4)] * 3)
    peaked = token_entropy(np.array([[0.0, -np.inf, -np.inf]]))
    assert peaked == pytest.approx([0.0])
    p = np.array([0.7, 0.2, 0.1])
    assert token_entropy(np.log(p) + 3.0) == pytest.approx(-(p * np.log(p)).sum())  # logits shift-invariant
    assert mean_token_entropy([np.array([1.0, 2.0]), np.array([4.0])], mask=[[1, 0], [1]]) == 2.5
    assert mean_token_entropy(sampled_logprobs=[-1.0, -3.0]) == 2.0
    # −mean log p of sampled tokens estimates the entropy
    rng = np.random.default_rng(6)
    samples = rng.choice(3, size=200_000, p=p)
    assert mean_token_entropy(sampled_logprobs=np.log(p)[samples]) == pytest.approx(-(p * np.log(p)).sum(), abs=0.01)
    with pytest.raises(ValueError, match="exactly one"):
        mean_token_entropy()


def test_t_interval_over_few_values_uses_students_t():
    from interplay.metrics import mean_interval, t_quantile

    for p, df, table in ((0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 4, 2.7764), (0.975, 30, 2.0423),
                         (0.95, 10, 1.8125)):
        assert t_quantile(p, df) == pytest.approx(table, abs=1e-3)
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4))
    iv = mean_interval([0.2, 0.4, 0.6], method="t")
    half = t_quantile(0.975, 2) * 0.2 / math.sqrt(3)
    assert (iv.mean, iv.low, iv.high) == pytest.approx((0.4, 0.4 - half, 0.4 + half))
    assert math.isnan(mean_interval([0.5], method="t").low)
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile(0.975, 0)
