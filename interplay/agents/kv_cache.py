"""A KV cache for ``HFSession`` that grows in chunks instead of copying itself at every decode step.

transformers' ``DynamicLayer.update`` concatenates the new keys and values onto the old ones, so each
decode step copies every row's whole cache, in every layer. ``ChunkedLayer`` keeps them in buffers with
room for ``ChunkedLayer.chunk`` more positions: a step writes its position in place, and the buffers
are reallocated (one copy) only when they are full. ``keys``/``values`` stay what ``DynamicLayer``
exposes (tensors of shape ``[batch, kv_heads, length, head_dim]``, here views of the buffers), so
everything that reads or replaces them (``batch_select_indices``, ``crop``, the session's left crop)
works unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class ChunkedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of buffers grown ``chunk`` positions at a time.

    Whatever replaces ``keys``/``values`` from outside (``batch_select_indices``, a left crop,
    ``reorder_cache``) leaves them outside the buffers; the next ``update`` copies them into new ones.
    """

    #: Spare positions allocated with each buffer: one reallocation per ``chunk`` decode steps.
    chunk = 64

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        end = length + key_states.shape[-2]
        if not self._holds(end):
            self.key_buffer = self._grown(self.keys, key_states, length, end)
            self.value_buffer = self._grown(self.values, value_states, length, end)
        self.key_buffer[:, :, length:end] = key_states
        self.value_buffer[:, :, length:end] = value_states
        self.keys = self.key_buffer[:, :, :end]
        self.values = self.value_buffer[:, :, :end]
        return self.keys, self.values

    def _holds(self, end: int) -> bool:
        """Whether ``keys``/``values`` are still the buffers' first positions, with room up to ``end``."""
        keys, values, buffer = self.keys, self.values, self.key_buffer
        return (buffer is not None and end <= buffer.shape[-2] and keys.shape[:2] == buffer.shape[:2]
                and keys.data_ptr() == buffer.data_ptr() and values.data_ptr() == self.value_buffer.data_ptr())

    def _grown(self, old: torch.Tensor, new: torch.Tensor, length: int, end: int) -> torch.Tensor:
        """A buffer for ``end + chunk`` positions holding the ``length`` cached ones of ``old``."""
        batch, heads, _, dim = new.shape
        buffer = new.new_empty(batch, heads, end + self.chunk, dim)
        if length:
            buffer[:, :, :length] = old
        return buffer


class ChunkedCache(DynamicCache):
    """A ``DynamicCache`` of ``ChunkedLayer`` (full attention in every layer, as ``DynamicCache()`` has)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer_class_to_replicate = ChunkedLayer


__all__ = ["ChunkedCache", "ChunkedLayer"]
