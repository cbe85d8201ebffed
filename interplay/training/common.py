"""What the imitation and GRPO trainers share: defaults, launch checks, the held-out score, the terminal.

- ``with_bf16_where_supported``: TRL config defaults with bf16 only where a GPU supports it.
- ``start_model``: the model a run starts from, and the ``peft_config`` TRL gets when it trains LoRA.
- ``check_launch``: refuses processes launched outside the distributed job the trainer sees.
- ``HeldOutSuccessCallback``: greedy success on held-out tasks, logged through the trainer.
- ``TrainingConsole`` + ``use_console``: one progress bar with the live figures in place of the trainer's
  printed log dictionaries, and every log entry, in full, in a JSONL file.
- ``library_output_to``: within a block, library warnings, log records and progress bars go to a file.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from transformers import TrainerCallback

from interplay.training.config import RunConfig


def with_bf16_where_supported(defaults: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """``defaults`` + bf16 only where a GPU supports it (TRL's default bf16=True fails on a CPU) + overrides."""
    import torch

    return {**defaults, "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(), **overrides}


def lora_config(settings: Any) -> Any:
    """``settings`` (a ``LoraSettings``) as TRL's ``peft_config``: the one place they become a peft config."""
    from interplay.models import require_peft

    peft = require_peft()
    return peft.LoraConfig(task_type="CAUSAL_LM", r=settings.r, lora_alpha=settings.scale_alpha,
                           lora_dropout=settings.dropout, target_modules=settings.target_modules)


class StartModel(NamedTuple):
    """What a run starts from (``start_model``)."""

    model: Any
    tokenizer: Any
    peft_config: Any  # for TRL: a fresh adapter to add, or None
    adapters: AdapterBase | None  # a callback that writes the saved adapters' base name; None without LoRA


def start_model(config: RunConfig) -> StartModel:
    """The model, tokenizer and ``peft_config`` a run of ``config`` (``model`` and ``lora`` fields) starts from.

    - No LoRA: the model, an adapter directory merged into its base (all weights train); peft_config None.
    - LoRA from a full model: that model and ``lora_config(config.lora)``: TRL adds a fresh adapter.
    - LoRA from an adapter directory: that adapter, trainable, and peft_config None (TRL refuses a second
      adapter on a PeftModel): the run continues it, so a pipeline's SFT adapter is what GRPO trains, and
      the output stays one adapter over the original base.

    With LoRA, the saved adapters name their base as ``models.portable_name`` gives it ("tiny", a catalogue
    name, an absolute path; ``AdapterBase``), so that they load wherever that name resolves.
    """
    from interplay import models

    if not config.lora.enabled:
        model, tokenizer = models.load(config.model)
        return StartModel(model, tokenizer, None, None)
    base = models.adapter_base(config.model)
    if base is None:
        model, tokenizer = models.load(config.model)
        return StartModel(model, tokenizer, lora_config(config.lora), AdapterBase(models.portable_name(config.model)))
    model, tokenizer = models.load(config.model, adapter="trainable")
    saved = model.peft_config["default"]
    _check_same_adapter(config, saved)
    # While training, the base is the local checkpoint: peft looks for its config.json when it saves and
    # would ask the model hub about a bare name like "tiny".
    saved.base_model_name_or_path = models.resolve(models.weights_root(base))
    return StartModel(model, tokenizer, None, AdapterBase(models.portable_name(base)))


class AdapterBase(TrainerCallback):
    """Names ``base`` as the base model in the ``adapter_config.json`` of every checkpoint the trainer saves
    (``write`` does it for the final output directory)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def write(self, folder: str | Path) -> None:
        path = Path(folder) / "adapter_config.json"
        if path.is_file():
            config = json.loads(path.read_text())
            path.write_text(json.dumps({**config, "base_model_name_or_path": self.base}, indent=2, sort_keys=True))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        if state.is_world_process_zero:
            self.write(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")


def _check_same_adapter(config: RunConfig, saved: Any) -> None:
    """Refuse LoRA settings that contradict the adapter a run continues (its rank and scale are its own)."""
    lora = config.lora
    if (saved.r, float(saved.lora_alpha)) != (lora.r, lora.scale_alpha):
        raise ValueError(f"{config.model} is a LoRA adapter (r={saved.r}, alpha={saved.lora_alpha:g}) and a LoRA run "
                         f"continues training it, but this run asks for r={lora.r}, alpha={lora.scale_alpha:g}: set "
                         f"lora r={saved.r} and alpha={saved.lora_alpha:g} to continue it, or lora r=0 to merge it "
                         "into its base and train all the weights.")


def check_launch(args: Any) -> None:
    """Refuse several launched processes that the trainer would not run as one distributed job.

    ``WORLD_SIZE`` > 1 (torchrun, ``accelerate launch``) but ``args.world_size`` == 1 happens on a machine
    without a GPU when the processes are not told to use the CPU backend: each would train alone on the same
    data and all would write ``output_dir`` at once. (``accelerate launch --cpu --num_processes N`` starts a
    single process unless it runs under mpirun.)
    """
    import os

    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if launched > 1 and args.world_size == 1:
        raise ValueError(f"{launched} processes were launched (WORLD_SIZE={launched}) but the trainer sees one: each "
                         "would train alone and write output_dir. Without a GPU pass --use-cpu true (TrainingArguments"
                         ".use_cpu=True, the gloo backend), e.g. `accelerate launch --multi_gpu --num_processes 2 -m "
                         "interplay.cli train ... --use-cpu true`.")


class HeldOutSuccessCallback(TrainerCallback):
    """Scores greedy success on held-out tasks (EVAL seeds) every ``every`` steps and at the end of
    training, and logs ``heldout/success_rate``, ``heldout/mean_turns``, ``heldout/invalid_rate`` through
    the trainer (its log history, progress bar and ``report_to`` integrations)."""

    def __init__(self, env: str, env_kwargs: dict[str, Any], tokenizer: Any, n: int = 100, every: int = 0,
                 max_turns: int | None = None, max_new_tokens: int = 16,
                 agent_kwargs: dict[str, Any] | None = None) -> None:
        self.env, self.env_kwargs, self.tokenizer = env, env_kwargs, tokenizer
        self.n, self.every, self.max_turns, self.max_new_tokens = n, every, max_turns, max_new_tokens
        self.agent_kwargs = dict(agent_kwargs or {})  # e.g. chat_template_kwargs, thinking_budget
        self.trainer: Any = None  # set by the caller: logging goes through trainer.log
        self.results: list[dict[str, Any]] = []
        self._scored_step = -1

    def score(self, model: Any, step: int) -> dict[str, Any]:
        from interplay.agents.hf import HFAgent
        from interplay.evaluation import evaluate

        agent = HFAgent(model, self.tokenizer, temperature=0.0, max_new_tokens=self.max_new_tokens, **self.agent_kwargs)
        result = evaluate(self.env, agent, self.n, env_kwargs=self.env_kwargs, max_turns=self.max_turns,
                          progress=False)
        metrics = {f"heldout/{k}": result[k] for k in ("success_rate", "mean_turns", "invalid_rate")}
        self.results.append({"step": step, **metrics})
        self._scored_step = step
        if self.trainer is not None:
            self.trainer.log(dict(metrics))
        return metrics

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.every and state.global_step % self.every == 0:
            self.score(model, state.global_step)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._scored_step = -1  # each DAgger round restarts the step count

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.global_step != self._scored_step:
            self.score(model, state.global_step)


class TrainingConsole(TrainerCallback):
    """What a run shows and keeps, in place of the trainer's printed log dictionaries (``use_console``).

    Shows one progress bar over optimizer steps (its rate is the step time) with the few live figures
    of ``FIGURES`` that the run logs; keeps every log entry, in full, as a line of JSON
    (``{"step": .., **entry}``) appended to ``log_path``. ``bar=False``: the file only. In a
    multi-process run only the main process shows and writes.
    """

    #: Log keys shown on the bar, and their labels: the loss, success while training (GRPO's episodes),
    #: and the held-out score when it is logged.
    FIGURES = {"loss": "loss", "episode/success_rate": "success", "heldout/success_rate": "held-out"}

    def __init__(self, log_path: str | Path, description: str = "train", bar: bool = True) -> None:
        self.log_path, self.description, self.show_bar = Path(log_path), description, bar
        self.bar: Any = None
        self.figures: dict[str, str] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.show_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.description, unit="step",
                            dynamic_ncols=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        with self.log_path.open("a") as f:
            f.write(json.dumps({"step": state.global_step, "time": time.time(), **logs}, default=str) + "\n")
        shown = {label: logs[key] for key, label in self.FIGURES.items() if isinstance(logs.get(key), (int, float))}
        if self.bar is not None and shown:
            self.figures.update({label: f"{value:.3g}" for label, value in shown.items()})
            self.bar.set_postfix(self.figures, refresh=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            self.bar.close()
            self.bar = None


def use_console(trainer: Any, console: TrainerCallback | None) -> None:
    """Put ``console`` (a ``TrainingConsole``, say) in place of the trainer's own terminal output: its progress
    bar (in a notebook, its notebook bar), or with ``disable_tqdm`` the log dictionaries it prints. ``None``:
    leave the trainer as it is."""
    from transformers.trainer import DEFAULT_PROGRESS_CALLBACK
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    if console is None:
        return
    for own in {PrinterCallback, ProgressCallback, DEFAULT_PROGRESS_CALLBACK}:
        trainer.remove_callback(own)
    trainer.add_callback(console)


#: Loggers whose records ``library_output_to`` sends to its file.
LIBRARY_LOGGERS = ("transformers", "trl", "accelerate", "datasets", "torch")


@contextmanager
def library_output_to(path: str | Path) -> Iterator[None]:
    """Within the block, what libraries print on their own goes to ``path`` (appended) instead of the
    terminal: Python warnings, the log records of ``LIBRARY_LOGGERS``, and transformers' and datasets'
    progress bars (loading weights, writing shards) are off. Everything is restored after the block; the
    warning filters and the process environment are not changed."""
    import transformers.utils.logging as hf_logging

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = {name: (logging.getLogger(name), list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
             for name in LIBRARY_LOGGERS}
    bars = hf_logging.is_progress_bar_enabled()
    datasets_bars = _datasets_progress_bars(None)

    def to_file(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(warnings.formatwarning(message, category, filename, lineno, line))

    try:
        with warnings.catch_warnings():
            warnings.showwarning = to_file
            for logger, _, _ in saved.values():
                logger.handlers, logger.propagate = [handler], False
            hf_logging.disable_progress_bar()
            _datasets_progress_bars(False)
            yield
    finally:
        for logger, handlers, propagate in saved.values():
            logger.handlers, logger.propagate = handlers, propagate
        if bars:
            hf_logging.enable_progress_bar()
        _datasets_progress_bars(datasets_bars)
        handler.close()


def _datasets_progress_bars(enabled: bool | None) -> bool | None:
    """Whether datasets shows progress bars; set it first when ``enabled`` is a bool. None without datasets."""
    try:
        from datasets.utils import logging as ds_logging
    except ImportError:
        return None
    if enabled is True:
        ds_logging.enable_progress_bar()
    elif enabled is False:
        ds_logging.disable_progress_bar()
    return ds_logging.is_progress_bar_enabled()


__all__ = ["AdapterBase", "HeldOutSuccessCallback", "StartModel", "TrainingConsole", "check_launch", "library_output_to",
           "lora_config", "start_model", "use_console", "with_bf16_where_supported"]
