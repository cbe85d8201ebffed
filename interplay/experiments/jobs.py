"""The cached job runner: named jobs whose results stay on disk, so a run resumes where it stopped.

A job ``name`` owns the folder ``<root>/<name>/``. Running it writes, in that folder, ``messages.log``
(the libraries' warnings and messages while it ran), ``result.json`` (what it returned, JSON) and last a
``DONE`` marker; a job whose ``DONE`` marker and ``result.json`` both exist is not run again, its result
is read back. A training job's folder is also the trained model's (``Jobs.train``), with the trainer's
log entries in ``train_log.jsonl``.

A run's root can carry a manifest of the config it was made with (``check_manifest``): a rerun with
another config into the same root is refused with a clear error instead of mixing results.

TRL's ``SFTConfig`` / ``GRPOConfig`` are built in one place, ``trl_args``, from the library's defaults
(``interplay.training.imitation.sft_defaults``, ``interplay.training.grpo.grpo_defaults``) and a run's
overrides; ``train`` trains with them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DONE = "DONE"
RESULT = "result.json"
#: The trainings ``train`` runs.
KINDS = ("sft", "grpo")


def check_manifest(root: Path, wanted: dict[str, Any], describe: Callable[[dict[str, Any]], str],
                   manifest: str = "run.json") -> None:
    """Refuse a root made by another config: ``root/manifest`` must hold ``wanted`` (written on first use).

    ``describe`` puts a manifest in words for the error (e.g. "a pipeline run of preset 'x' ...")."""
    path = root / manifest
    wanted = json.loads(json.dumps(wanted))  # as it reads back (tuples become lists)
    if not path.exists() and root.is_dir() and any(root.iterdir()):
        raise ValueError(f"{root} holds files but no {manifest}: an output of an older interplay (whose cached "
                         "results this version does not read) or not a run at all; pass another --out, or delete "
                         "the directory to start over.")
    if path.exists():
        found = json.loads(path.read_text())
        if found != wanted:
            raise ValueError(f"{root} holds {describe(found)}, not {describe(wanted)} (or its settings differ): "
                             "pass another --out, or delete the directory to start over.")
        return
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=1))


class Jobs:
    """Named, cached jobs under ``root`` (see the module's docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, name: str) -> Path:
        return self.root / name

    def done(self, name: str, key: Any = None) -> bool:
        """Whether ``name`` finished (its ``DONE`` marker and result exist); with ``key``, under that key."""
        folder = self.folder(name)
        if not ((folder / DONE).exists() and (folder / RESULT).exists()):
            return False
        return key is None or _marker(folder).get("key") == json.loads(json.dumps(key))

    def result(self, name: str) -> Any:
        return json.loads((self.folder(name) / RESULT).read_text())

    def run(self, name: str, compute: Callable[[Path], Any], key: Any = None) -> Any:
        """``compute(folder)``'s result (JSON), or the saved one when the job is ``done`` (under ``key``).

        ``key``: what the result depends on besides the name; a saved result under another key is redone."""
        if self.done(name, key):
            return self.result(name)
        from interplay.training.common import library_output_to

        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / DONE).unlink(missing_ok=True)
        started = time.perf_counter()
        with library_output_to(folder / "messages.log"):
            result = compute(folder)
        (folder / RESULT).write_text(json.dumps(result, indent=1))
        marker = {"seconds": time.perf_counter() - started, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "key": key}
        (folder / DONE).write_text(json.dumps(marker))  # written last: the job is complete
        return result

    def seconds(self, name: str) -> float:
        """How long the finished job ``name`` took (0 when its marker does not say)."""
        return float(_marker(self.folder(name)).get("seconds", 0.0))

    def compute_seconds(self) -> float:
        """The summed run times of every finished job below the root, whichever run made them (so a run that
        resumed, or read everything back, still reports what its results cost); markers that do not say: 0."""
        return sum(float(_marker(done.parent).get("seconds", 0.0)) for done in self.root.rglob(DONE)
                   if done.parent != self.root)

    def train(self, name: str, kind: str, config: Any, trl_kwargs: dict[str, Any]) -> dict[str, Any]:
        """A training job: ``train`` into ``<root>/<name>/`` (the model's folder), no progress bar; its result
        is ``{"train_s", "log_history", "heldout"}``."""
        from interplay.training.common import TrainingConsole

        def compute(folder: Path) -> dict[str, Any]:
            console = TrainingConsole(folder / "train_log.jsonl", name, bar=False)
            return summary(train(kind, config, folder, {"disable_tqdm": True, **trl_kwargs}, console=console))

        return self.run(name, compute)


def _marker(folder: Path) -> dict[str, Any]:
    """A ``DONE`` marker's content (older runs wrote a timestamp or seconds as plain text: empty)."""
    try:
        marker = json.loads((folder / DONE).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def trl_args(kind: str, **overrides: Any) -> dict[str, Any]:
    """TRL config kwargs of an SFT (``"sft"``) or GRPO (``"grpo"``) training: the library's defaults, then
    ``overrides``."""
    if kind == "sft":
        from interplay.training.imitation import sft_defaults

        return sft_defaults(**overrides)
    if kind == "grpo":
        from interplay.training.grpo import grpo_defaults

        return grpo_defaults(**overrides)
    raise ValueError(f"unknown training kind {kind!r}; choose from {', '.join(KINDS)}.")


def train(kind: str, config: Any, output_dir: Path, trl_kwargs: dict[str, Any], *, console: Any,
          resume: bool = False) -> Any:
    """Train ``config`` (an ``ImitationConfig`` for ``"sft"``, a ``GRPOTrainingConfig`` for ``"grpo"``) into
    ``output_dir`` with TRL's config from ``trl_args(kind, **trl_kwargs)``; ``resume``: from the last
    checkpoint there, if any. Returns the trainer's result (``seconds``, ``log_history``, ``heldout``)."""
    from transformers.trainer_utils import get_last_checkpoint

    args = trl_args(kind, **trl_kwargs, output_dir=str(output_dir))
    start = get_last_checkpoint(str(output_dir)) if resume and Path(output_dir).is_dir() else None
    if kind == "sft":
        from trl import SFTConfig

        from interplay.training.imitation import train_imitation

        # The console's bar is the job's: no second bar over the expert episodes.
        return train_imitation(config, SFTConfig(**args), resume=start, progress=False, console=console)
    from trl import GRPOConfig

    from interplay.training.grpo import train_grpo

    return train_grpo(config, GRPOConfig(**args), resume=start, console=console)


def summary(result: Any) -> dict[str, Any]:
    """What a training job keeps of the trainer's result."""
    return {"train_s": result.seconds, "log_history": result.log_history, "heldout": result.heldout}
