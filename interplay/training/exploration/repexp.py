"""Representation-based exploration, Tuyls et al. 2025, "Representation-Based Exploration for Language Models"."""

from __future__ import annotations

import hashlib
import math
from typing import Literal

import numpy as np

from interplay.training.exploration.shaper import Bonus, GroupInfo, Target

#: Whose hidden states RepExp reads: a frozen copy of the model GRPO starts from (the authors'), or the
#: policy being trained.
REPRESENTATIONS = ("start", "policy")
Representation = Literal["start", "policy"]


class RepExpBonus(Bonus):
    """Representation-based elliptical bonus, Tuyls et al. 2025, "Representation-Based Exploration for LMs".

    For per-episode vectors h_i (the mean last-layer hidden state over the response; sparse-randomly
    projected to ``proj_dim``, then centered on the group mean when ``center``), the bonus of episode i
    is its elliptical novelty against the group's covariance ``V = λI + Σ_j h_j h_j^T``: with
    ``leave_one_out=False`` (the default, what the authors' training runs use) the leverage score
    ``b_i = h_i^T V^{-1} h_i`` ∈ [0, 1), the sum over all j including i; with ``leave_one_out=True``
    ``b_i = h_i^T (λI + Σ_{j≠i} h_j h_j^T)^{-1} h_i`` = b_all / (1 − b_all) (Sherman–Morrison). Both are
    computed in the G×G kernel form, so the cost does not grow with the hidden size beyond one matrix
    product. Defaults follow the authors' recipe: λ = 0.01, ``proj_dim`` = 32 (their MATH/GSM8K
    setting), no unit normalization (``normalize=True`` scales each vector to norm 1 before centering),
    ``weight`` β = 0.01 on a 0/1 task reward, and the bonus added to the reward before GRPO's group
    normalization (``target="reward"``), the hidden states of a frozen copy of the starting model
    (``representation="start"``; ``"policy"`` reads the model being trained) and a fresh sparse projection
    for every group (``fresh_projection``, seeded by ``seed``, the step and the task; False keeps one). The
    bonus is 0 for every episode of a group without any success and applies to every episode (correct or
    not) of a group with one, so it never rewards novel failure where nothing was solved. At β = 0.01
    the bonus moves a group's GRPO advantages by about 1% or less wherever the task rewards differ, since
    they span 0 to 1; only in a group whose task rewards are all equal (every episode solved) does GRPO's
    division by the group's standard deviation make the bonus differences alone advantages of order 1.
    """

    name = "repexp"

    def __init__(self, weight: float = 0.01, lam: float = 0.01, proj_dim: int | None = 32, seed: int = 0,
                 leave_one_out: bool = False, center: bool = True, normalize: bool = False,
                 target: Target = "reward", representation: Representation = "start",
                 fresh_projection: bool = True) -> None:
        if representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
        if lam <= 0:
            raise ValueError(f"lam (ridge λ) must be > 0, got {lam}")
        if proj_dim is not None and proj_dim < 1:
            raise ValueError(f"proj_dim must be ≥ 1 or None (no projection), got {proj_dim}")
        super().__init__(weight, target)
        self.lam = float(lam)
        self.proj_dim, self.seed = proj_dim, seed
        self.leave_one_out, self.center, self.normalize = leave_one_out, center, normalize
        self.representation, self.fresh_projection = representation, fresh_projection
        self.projection: np.ndarray | None = None

    def _project(self, h: np.ndarray, group: GroupInfo) -> np.ndarray:
        if self.proj_dim is None:
            return h
        if self.fresh_projection:
            key = hashlib.blake2b(f"{self.seed}:{group.step}:{group.task_key!r}".encode(), digest_size=8).digest()
            self.projection = sparse_random_projection(h.shape[1], self.proj_dim, int.from_bytes(key, "little"))
        elif self.projection is None:
            self.projection = sparse_random_projection(h.shape[1], self.proj_dim, self.seed)
        elif self.projection.shape[0] != h.shape[1]:
            raise ValueError(f"hidden size changed from {self.projection.shape[0]} to {h.shape[1]}: one RepExpBonus "
                             "keeps one projection; use the same representation layer for every group")
        return h @ self.projection

    def bonus(self, group: GroupInfo) -> np.ndarray:
        if group.hidden is None:
            raise ValueError("RepExp needs GroupInfo.hidden: per-episode vectors of shape [G, D] (e.g. the mean "
                             "last-layer hidden state over the episode's agent tokens)")
        if not any(group.successes):
            return np.zeros(group.size)
        h = self._project(group.hidden, group)
        if self.normalize:
            h = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
        if self.center:
            h = h - h.mean(axis=0, keepdims=True)
        # Push-through identity: diag(H (λI + HᵀH)⁻¹ Hᵀ) = 1 − λ·diag((λI + HHᵀ)⁻¹).
        inv_diag = np.diag(np.linalg.inv(self.lam * np.eye(group.size) + h @ h.T))
        b_all = 1.0 - self.lam * inv_diag
        return b_all / (self.lam * inv_diag) if self.leave_one_out else b_all


def sparse_random_projection(in_dim: int, out_dim: int, seed: int = 0) -> np.ndarray:
    """Very sparse random projection matrix ``[in_dim, out_dim]`` (Li, Hastie & Church 2006).

    Entries are ``±sqrt(s/out_dim)`` with probability 1/(2s) each and 0 otherwise, s = √in_dim, so
    squared norms are preserved in expectation. Seeded: the same arguments give the same matrix.
    """
    s = math.sqrt(in_dim)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 0.0, 1.0], size=(in_dim, out_dim), p=[1 / (2 * s), 1 - 1 / s, 1 / (2 * s)])
    return signs * math.sqrt(s / out_dim)
