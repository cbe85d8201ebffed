"""PNG plots of evaluation results and training logs (matplotlib, Agg backend: no display needed).

The evaluation plots take ``{name: result}`` where each result is what ``interplay.evaluation.evaluate``
returns (or its JSON read back): one line per model, compared on the same tasks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Results = Mapping[str, Mapping[str, Any]]

# Keys of a TRL log_history entry that are bookkeeping, not curves.
_NOT_CURVES = {"step", "epoch", "total_flos", "train_runtime", "train_samples_per_second",
               "train_steps_per_second", "train_loss"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _series(results: Results, key: str) -> dict[str, tuple[list[float], list[float]]]:
    """``{name: (xs, ys)}`` of the results that have the mapping ``key`` ({"<x>": y}), x sorted."""
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty mapping {model name: evaluation result}.")
    out = {}
    for name, result in results.items():
        curve = result.get(key)
        if not curve:
            continue
        points = sorted((float(x), y) for x, y in curve.items() if y is not None)
        out[name] = ([x for x, _ in points], [float(y) for _, y in points])
    if not out:
        raise ValueError(f"none of the results ({', '.join(map(str, results))}) has {key!r}; "
                         f"evaluate with the option that computes it.")
    return out


def _subtitle(results: Results) -> str:
    first = next(iter(results.values()))
    return f"{first.get('env', '?')}, {first.get('n_tasks', '?')} tasks × {first.get('samples', '?')} samples"


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def _finish(fig: Any, ax: Any, path: str | Path) -> Path:
    """Grid, and the legend outside the axes (curves often run along y = 0 and y = 1)."""
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return _save(fig, path)


def plot_pass_at_k(results: Results, path: str | Path) -> Path:
    """pass@k against k (log₂ x-axis), one line per model, 95% bands across tasks where given."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for name, (ks, ys) in _series(results, "pass_at_k").items():
        (line,) = ax.plot(ks, ys, marker="o", label=name)
        bands = results[name].get("pass_at_k_ci95") or {}
        low_high = [bands.get(str(int(k))) or [None, None] for k in ks]
        if all(lo is not None and hi is not None for lo, hi in low_high):
            ax.fill_between(ks, [lo for lo, _ in low_high], [hi for _, hi in low_high],
                            color=line.get_color(), alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set(xlabel="k (samples per task)", ylabel="pass@k (unbiased)", ylim=(-0.02, 1.02),
           title=f"pass@k\n{_subtitle(results)}")
    return _finish(fig, ax, path)


def plot_coverage(results: Results, path: str | Path) -> Path:
    """Coverage profile Pcov(N) against N (log₂ x-axis), one line per model; smaller is better."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    exponents: set[float] = set()
    for name, (ns, ys) in _series(results, "coverage").items():
        # N spans 2^0 .. 2^64: plot log₂ N on a log-like (symlog) axis so that N = 2, 4, 16 and
        # 2^64 are all readable.
        xs = [math.log2(n) for n in ns]
        exponents.update(xs)
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("symlog", base=2, linthresh=1)
    ax.set_xticks(sorted(exponents))
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda e, _: f"{2**e:g}" if e <= 4 else f"2^{e:g}"))
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.tick_params(axis="x", labelrotation=40)
    ax.set(xlabel="N  (Pcov(N): share of expert episodes with log μ − log π ≥ log N; log scale)",
           ylabel="Pcov(N)  (lower is better)", ylim=(-0.02, 1.02),
           title=f"coverage profile vs the expert\n{_subtitle(results)}")
    return _finish(fig, ax, path)


def plot_success_by_turn(results: Results, path: str | Path) -> Path:
    """Cumulative success by turn (for feedback environments: accuracy within t attempts)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    series = _series(results, "success_by_turn")
    marker = "o" if max(len(turns) for turns, _ in series.values()) <= 20 else None
    for name, (turns, ys) in series.items():
        ax.plot(turns, ys, marker=marker, drawstyle="steps-post", label=name)
    ax.set(xlabel="turn / attempt t", ylabel="solved within t turns", ylim=(-0.02, 1.02),
           title=f"success by turn (feedback envs: by attempt)\n{_subtitle(results)}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _finish(fig, ax, path)


_KEY_CURVES = ("loss", "grad_norm", "reward", "reward_std", "entropy", "episode/success_rate", "episode/mean_turns",
               "episode/invalid_rate", "episode/frac_groups_equal_reward", "episode/distinct_outcomes_per_group")


def plot_training_curves(log_history: Sequence[Mapping[str, Any]], path: str | Path,
                         keys: Sequence[str] | None = None) -> Path:
    """One panel per logged quantity against the step, from a TRL/transformers trainer's
    ``trainer.state.log_history``. ``keys`` defaults to the loss, rewards, episode statistics, entropy and
    the exploration/held-out metrics logged at least twice."""
    if isinstance(log_history, (str, bytes)) or not log_history:
        raise ValueError("log_history must be a non-empty list of dicts (trainer.state.log_history).")
    counts: dict[str, int] = {}
    for entry in log_history:
        for key, value in entry.items():
            if key not in _NOT_CURVES and isinstance(value, (int, float)) and not isinstance(value, bool):
                counts[key] = counts.get(key, 0) + 1
    if keys is None:
        logged = [k for k, c in counts.items() if c >= 2]
        # The quantities that say whether training works; everything else only when none of them is there.
        keys = [k for k in logged if k in _KEY_CURVES or k.startswith(("explore/", "heldout/", "critique/"))] or logged
    keys = list(keys)
    missing = [k for k in keys if k not in counts]
    if missing or not keys:
        raise ValueError(f"no curve to plot for {missing or 'any key'}; numeric keys logged: {sorted(counts)}.")
    plt = _pyplot()
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(e.get("step", i), e[key]) for i, e in enumerate(log_history)
                  if isinstance(e.get(key), (int, float)) and math.isfinite(e[key])]
        ax.plot([s for s, _ in points], [v for _, v in points], marker="." if len(points) < 50 else None)
        ax.set(title=key, xlabel="step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    return _save(fig, path)


def plot_all(results: Results, out_dir: str | Path) -> list[Path]:
    """The evaluation plots that ``results`` has data for, written into ``out_dir``."""
    out_dir = Path(out_dir)
    written = [plot_pass_at_k(results, out_dir / "pass_at_k.png"),
               plot_success_by_turn(results, out_dir / "success_by_turn.png")]
    if any(r.get("coverage") for r in results.values()):
        written.append(plot_coverage(results, out_dir / "coverage.png"))
    return written


__all__ = ["plot_all", "plot_coverage", "plot_pass_at_k", "plot_success_by_turn", "plot_training_curves"]
