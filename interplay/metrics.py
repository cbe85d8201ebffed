"""The math of evaluation: pass@k, coverage profiles, success by turn, diversity and entropy.

Pure functions over numbers (success counts, log-probabilities, outcome strings); they know nothing
of environments, models or Trajectory records, so the evaluation loop and the GRPO trainer can both
call them. pass@k and the coverage profile say how likely k sampled episodes are to hold a success
(what reinforcement learning on sampled episodes can build on); success by turn, diversity and entropy
say how an agent spends its turns and how varied its episodes are.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_COVERAGE_GRID",
    "DEFAULT_SUCCESS_GRID",
    "Interval",
    "compare_pass_at_k",
    "coverage_profile",
    "distinct_outcomes",
    "log_ratio_quantiles",
    "mean_interval",
    "mean_token_entropy",
    "pass_at_k",
    "pass_at_k_curve",
    "per_task_pass_at_k",
    "proportion_interval",
    "success_by_turn",
    "success_histogram",
    "success_profile",
    "success_rates",
    "t_quantile",
    "token_entropy",
]

# Sequence log-probabilities of multi-turn episodes can be very negative, so the grid runs finely
# where a trained model's ratios fall (N up to 2^16) and coarsely up to 2^64, keeping the JSON keys
# readable. Beyond it, read :func:`log_ratio_quantiles`.
DEFAULT_COVERAGE_GRID: tuple[int, ...] = tuple(2**e for e in (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64))
# p̂ from n samples has resolution 1/n; thresholds 1/N for N = 1 .. 1024.
DEFAULT_SUCCESS_GRID: tuple[int, ...] = tuple(2**e for e in range(11))

SuccessSpec = int | Sequence[bool]  # per task: a success count c (with n given) or the n outcomes


# --------------------------------------------------------------------------------------------- pass@k
def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` succeeded: ``1 − C(n−c, k) / C(n, k)``.

    Chen et al. 2021, "Evaluating Large Language Models Trained on Code": computed in product form
    ``1 − ∏_{i=n−c+1}^{n} (1 − k/i)`` (here through log1p/expm1), which stays exact for n in the
    millions where the binomials overflow. Requires ``0 ≤ c ≤ n`` and ``1 ≤ k ≤ n``.
    """
    n, c, k = _check_int("n", n), _check_int("c", c), _check_int("k", k)
    if n < 1:
        raise ValueError(f"n (samples per task) must be ≥ 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c (successes) must satisfy 0 ≤ c ≤ n={n}, got c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must satisfy 1 ≤ k ≤ n={n} (pass@k needs at least k samples), got k={k}")
    if n - c < k:  # every k-subset contains a success
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    return float(-np.expm1(np.sum(np.log1p(-k / i))))


def _counts(successes_per_task: Sequence[SuccessSpec], n: int | Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """(n per task, c per task) from either success counts plus n, or per-task boolean sequences."""
    if isinstance(successes_per_task, str | bytes) or not isinstance(successes_per_task, Sequence | np.ndarray):
        raise TypeError("successes_per_task must be a sequence with one entry per task "
                        "(an int success count, or a sequence of per-sample booleans)")
    if len(successes_per_task) == 0:
        raise ValueError("successes_per_task is empty: need at least one task")
    if n is not None and not isinstance(n, int | np.integer):
        ns_given = [_check_int("n[i]", v) for v in n]
        if len(ns_given) != len(successes_per_task):
            raise ValueError(f"n has {len(ns_given)} entries but there are {len(successes_per_task)} tasks")
    else:
        ns_given = [None if n is None else _check_int("n", n)] * len(successes_per_task)
    ns, cs = [], []
    for t, (entry, n_t) in enumerate(zip(successes_per_task, ns_given)):
        if isinstance(entry, int | np.integer) and not isinstance(entry, bool | np.bool_):
            if n_t is None:
                raise ValueError(f"task {t} gives a success count ({entry}) but n was not given: pass n=<samples "
                                 "per task>, or give the per-sample booleans instead of counts")
            ns.append(n_t)
            cs.append(int(entry))
        else:
            outcomes = np.asarray(entry)
            if outcomes.ndim != 1 or not (outcomes.dtype == bool or np.isin(outcomes, (0, 1)).all()):
                raise ValueError(f"task {t}: expected a success count or a 1-D sequence of booleans, got {entry!r}")
            if n_t is not None and n_t != len(outcomes):
                raise ValueError(f"task {t} has {len(outcomes)} samples but n={n_t}")
            ns.append(len(outcomes))
            cs.append(int(outcomes.sum()))
    return np.asarray(ns), np.asarray(cs)


def per_task_pass_at_k(successes_per_task: Sequence[SuccessSpec], k: int,
                       n: int | Sequence[int] | None = None) -> np.ndarray:
    """Per-task unbiased pass@k estimates (array of length T); see :func:`pass_at_k_curve` for inputs."""
    ns, cs = _counts(successes_per_task, n)
    if k > ns.min():
        raise ValueError(f"k={k} exceeds the fewest samples of any task ({ns.min()}): pass@k needs n ≥ k per task")
    return np.array([pass_at_k(int(n_t), int(c_t), k) for n_t, c_t in zip(ns, cs)])


def pass_at_k_curve(successes_per_task: Sequence[SuccessSpec], n: int | Sequence[int] | None = None,
                    ks: Sequence[int] | None = None) -> dict[int, float]:
    """Mean unbiased pass@k over tasks, ``{k: pass@k}``.

    Each entry of ``successes_per_task`` is either a success count (then ``n`` gives the samples per
    task: one int, or one per task) or the per-sample booleans of that task. Tasks may have different
    numbers of samples; ``ks`` defaults to ``1 .. min_t n_t`` (a larger k is undefined for some task).
    """
    ns, _ = _counts(successes_per_task, n)
    ks = range(1, int(ns.min()) + 1) if ks is None else ks
    return {int(k): float(per_task_pass_at_k(successes_per_task, int(k), n).mean()) for k in ks}


class Interval(NamedTuple):
    """A mean with its standard error and a two-sided confidence interval."""

    mean: float
    stderr: float
    low: float
    high: float


def mean_interval(values: ArrayLike, confidence: float = 0.95, method: str = "normal",
                  n_boot: int = 10_000, seed: int = 0) -> Interval:
    """Mean of per-task values with a confidence interval across tasks.

    ``method="normal"``: mean ± z·s/√T; ``"t"``: mean ± t·s/√T with Student's t on T − 1 degrees of
    freedom (for few values, e.g. one per training seed); ``"bootstrap"``: percentile interval of ``n_boot``
    resamples of tasks (seeded). 100 tasks give roughly ±5 points on a success rate near 50% (the
standard error of a mean of 100 draws of 0 or 1 at p = 0.5 is √(0.25/100) = 0.05).
    One value gives a NaN interval for ``"normal"`` and ``"t"``.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("values must be a non-empty array of finite numbers (one per task)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(x.mean())
    stderr = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")
    if method == "normal":
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        return Interval(mean, stderr, mean - z * stderr, mean + z * stderr)
    if method == "t":
        t = t_quantile(0.5 + confidence / 2, x.size - 1) if x.size > 1 else float("nan")
        return Interval(mean, stderr, mean - t * stderr, mean + t * stderr)
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        boots = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
        low, high = np.quantile(boots, [0.5 - confidence / 2, 0.5 + confidence / 2])
        return Interval(mean, stderr, float(low), float(high))
    raise ValueError(f"method must be 'normal', 't' or 'bootstrap', got {method!r}")


def proportion_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """A success rate ``successes / n`` with Wilson's score interval (Wilson, 1927).

    Unlike mean ± z·s/√n it stays inside [0, 1] and is not of zero width at 0% or 100%: 0 of 16
    gives [0, 0.19], where the normal interval would claim [0, 0].
    """
    successes, n = _check_int("successes", successes), _check_int("n", n)
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got successes={successes}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, math.sqrt(p * (1 - p) / n), max(0.0, centre - half), min(1.0, centre + half))


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (numerical: Simpson's rule on the
    density and bisection; about 6 significant digits, e.g. ``t_quantile(0.975, 1)`` = 12.706)."""
    df = _check_int("df", df)
    if df < 1 or not 0 < p < 1:
        raise ValueError(f"t_quantile needs df >= 1 and 0 < p < 1, got df={df}, p={p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float) -> float:  # P(T <= x) for x >= 0
        grid = np.linspace(0.0, x, 4001)
        dens = np.exp(log_c - (df + 1) / 2 * np.log1p(grid ** 2 / df))
        h = x / 4000
        return 0.5 + h / 3 * float(dens[0] + dens[-1] + 4 * dens[1:-1:2].sum() + 2 * dens[2:-1:2].sum())

    low, high = 0.0, 1.0
    while cdf(high) < p:
        low, high = high, 2 * high
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def compare_pass_at_k(successes_a: Sequence[SuccessSpec], successes_b: Sequence[SuccessSpec], k: int,
                      n: int | Sequence[int] | None = None, confidence: float = 0.95,
                      method: str = "normal") -> Interval:
    """pass@k of B minus pass@k of A on the same tasks, with a paired interval across tasks.

    Pairing by task removes the task-difficulty variance that dominates unpaired comparisons; an
    interval that excludes 0 is a difference worth reporting.
    """
    a = per_task_pass_at_k(successes_a, k, n)
    b = per_task_pass_at_k(successes_b, k, n)
    if a.shape != b.shape:
        raise ValueError(f"A has {a.size} tasks and B has {b.size}: compare checkpoints on the same tasks")
    return mean_interval(b - a, confidence=confidence, method=method)


# ------------------------------------------------------------------------------------------- coverage
def _grid(grid: Sequence[float]) -> list[float]:
    values = list(grid)
    if not values or any(not isinstance(v, int | float | np.integer | np.floating) or not v >= 1 for v in values):
        raise ValueError(f"grid must be a non-empty sequence of numbers N ≥ 1, got {grid!r}")
    return values


def _log_ratio(log_mu: ArrayLike, log_pi: ArrayLike) -> np.ndarray:
    pi = np.asarray(log_pi, dtype=np.float64)
    mu = np.broadcast_to(np.asarray(log_mu, dtype=np.float64), pi.shape)
    if pi.ndim != 1 or pi.size == 0:
        raise ValueError(f"log_pi must be a non-empty 1-D array (one sequence log-prob per expert sample), "
                         f"got shape {pi.shape}")
    for name, arr in (("log_mu", mu), ("log_pi", pi)):
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN")
        if (arr > 1e-6).any():
            raise ValueError(f"{name} contains positive values (max {arr.max():.3g}): pass log-probabilities "
                             "(≤ 0), not negative log-likelihoods or losses")
    if np.isneginf(mu).any():
        raise ValueError("log_mu contains -inf: an expert sample must have positive probability under the expert")
    return mu - pi  # +inf where π gives the expert's trajectory zero probability: never covered


def coverage_profile(log_mu: ArrayLike, log_pi: ArrayLike, grid: Sequence[float] = DEFAULT_COVERAGE_GRID,
                     task_ids: Sequence[Hashable] | None = None) -> dict[float, float]:
    """Coverage profile ``Pcov(N) = P_{x, y~μ}[log μ(y|x) − log π(y|x) ≥ log N]`` for N in ``grid``.

    Inputs are natural-log sequence probabilities (agent tokens only) of expert samples y ~ μ(·|x):
    ``log_mu`` under the expert, ``log_pi`` under the model. With a deterministic expert μ(y|x) = 1,
    pass ``log_mu=0.0`` (a scalar broadcasts). Smaller is better: Pcov(N) is the fraction of expert
    behaviour the model puts less than 1/N of the expert's probability on, i.e. that best-of-N
    sampling would likely miss. Since N=1 tests log μ ≥ log π, Pcov(1) = 1 whenever the expert is
    deterministic, unless π also puts probability 1 on the expert's answer; an agent that copies the
    expert has Pcov(N) = 0 for every N > 1.

    Several samples per task are weighted so that every task counts equally when ``task_ids`` (one
    per sample) is given; otherwise every sample counts equally.
    """
    ratio = _log_ratio(log_mu, log_pi)
    weights = np.full(ratio.size, 1.0 / ratio.size)
    if task_ids is not None:
        if len(task_ids) != ratio.size:
            raise ValueError(f"task_ids has {len(task_ids)} entries but there are {ratio.size} samples")
        per_task: dict[Hashable, int] = {}
        for t in task_ids:
            per_task[t] = per_task.get(t, 0) + 1
        weights = np.array([1.0 / (per_task[t] * len(per_task)) for t in task_ids])
    return {n_: math.fsum(weights[ratio >= math.log(n_)]) for n_ in _grid(grid)}  # fsum: 6 × 1/6 is 1.0


def log_ratio_quantiles(log_mu: ArrayLike, log_pi: ArrayLike,
                        quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> dict[float, float]:
    """Quantiles of ``log μ(y|x) − log π(y|x)`` in nats: the coverage profile without a grid.

    ``Pcov(N) ≥ 1 − q`` exactly when the q-quantile is ≥ log N; +inf means π gave probability 0.
    """
    ratio = _log_ratio(log_mu, log_pi)
    return {float(q): float(np.quantile(ratio, q)) for q in quantiles}


def success_rates(successes_per_task: Sequence[SuccessSpec], n: int | Sequence[int] | None = None) -> np.ndarray:
    """Per-task success rate p̂(x) = c/n (inputs as in :func:`pass_at_k_curve`)."""
    ns, cs = _counts(successes_per_task, n)
    if (cs > ns).any() or (cs < 0).any():
        raise ValueError("each success count must satisfy 0 ≤ c ≤ n")
    return cs / ns


def _p_hat(p_hat: ArrayLike) -> np.ndarray:
    p = np.asarray(p_hat, dtype=np.float64).ravel()
    if p.size == 0 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_hat must be a non-empty array of per-task success rates in [0, 1]")
    return p


def success_profile(p_hat: ArrayLike, grid: Sequence[float] = DEFAULT_SUCCESS_GRID) -> dict[float, float]:
    """Sampling-based twin of the coverage profile: ``{N: fraction of tasks with p̂(x) ≥ 1/N}``.

    A task with p̂ ≥ 1/N is one that best-of-N sampling solves with probability ≥ 1 − 1/e.
    Larger is better (the opposite orientation of :func:`coverage_profile`).
    """
    p = _p_hat(p_hat)
    return {n_: float(np.mean(p >= 1.0 / n_ - 1e-12)) for n_ in _grid(grid)}


def success_histogram(p_hat: ArrayLike, bins: int | Sequence[float] = 10) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of per-task success rates on [0, 1]: ``(counts, bin_edges)`` as ``np.histogram``."""
    return np.histogram(_p_hat(p_hat), bins=bins, range=(0.0, 1.0))


# ------------------------------------------------------------------------------ feedback and diversity
def success_by_turn(turns_to_success: Sequence[int | None], max_turn: int | None = None) -> list[float]:
    """Cumulative success rate by turn: element t−1 is the fraction of episodes solved at turn ≤ t.

    ``turns_to_success`` holds, per episode, the 1-based turn (attempt) of the first success, or None
    for a failed episode. For feedback environments, element 0 is accuracy at attempt 1 and element
    K−1 accuracy within K attempts. ``max_turn`` defaults to the latest success seen (at least 1);
    successes after ``max_turn`` count as failures within the window.
    """
    if len(turns_to_success) == 0:
        raise ValueError("turns_to_success is empty: need one entry (turn or None) per episode")
    turns = []
    for i, t in enumerate(turns_to_success):
        if t is None:
            continue
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or t < 1:
            raise ValueError(f"episode {i}: turn of first success must be an int ≥ 1 or None, got {t!r}")
        turns.append(int(t))
    if max_turn is None:
        max_turn = max(turns, default=1)
    max_turn = _check_int("max_turn", max_turn)
    if max_turn < 1:
        raise ValueError(f"max_turn must be ≥ 1, got {max_turn}")
    solved_at = np.bincount(np.asarray(turns, dtype=np.int64), minlength=max_turn + 1)[1:max_turn + 1]
    return (np.cumsum(solved_at) / len(turns_to_success)).tolist()


def distinct_outcomes(outcomes_per_task: Sequence[Sequence[str]]) -> np.ndarray:
    """Number of distinct outcome strings among each task's samples (``info["outcome"]``)."""
    for t, outcomes in enumerate(outcomes_per_task):
        if isinstance(outcomes, str):
            raise TypeError(f"task {t}: expected a sequence of outcome strings, got the string {outcomes!r}")
    return np.array([len(set(outcomes)) for outcomes in outcomes_per_task], dtype=np.int64)


def token_entropy(logits: ArrayLike) -> np.ndarray:
    """Entropy in nats of each next-token distribution, from logits or log-probs over the last axis."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(f"logits must have a vocabulary axis last, got shape {z.shape}")
    z = z - z.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    p = np.exp(logp)
    return -(p * np.where(p > 0, logp, 0.0)).sum(axis=-1)


def _flat(values: ArrayLike | Sequence[ArrayLike]) -> np.ndarray:
    """One flat float array from an array or a ragged list of per-episode arrays."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64).ravel()
    parts = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    return np.concatenate(parts) if parts else np.zeros(0)


def mean_token_entropy(entropies: ArrayLike | Sequence[ArrayLike] | None = None, *,
                       sampled_logprobs: ArrayLike | Sequence[ArrayLike] | None = None,
                       mask: ArrayLike | Sequence[ArrayLike] | None = None) -> float:
    """Mean per-token entropy (nats) over agent tokens.

    Give either per-token ``entropies`` (e.g. from :func:`token_entropy`) or the log-probs of the
    sampled tokens: ``−mean log π(token)`` is an unbiased Monte-Carlo estimate of the same quantity
    when the tokens were sampled from π at temperature 1. ``mask`` (1 = agent token) selects tokens;
    arrays or ragged lists of per-episode arrays are accepted.
    """
    if (entropies is None) == (sampled_logprobs is None):
        raise ValueError("give exactly one of entropies= or sampled_logprobs=")
    values = _flat(entropies) if entropies is not None else -_flat(sampled_logprobs)
    if mask is not None:
        m = _flat(mask)
        if m.shape != values.shape:
            raise ValueError(f"mask has {m.size} tokens but the values have {values.size}")
        values = values[m > 0]
    if values.size == 0:
        raise ValueError("no tokens to average (empty input or an all-zero mask)")
    return float(values.mean())
