"""Seed ranges, in one place: training draws tasks from TRAIN_SEEDS, evaluation from EVAL_SEEDS,
so "held-out" means held out (disjoint as long as training uses fewer than EVAL_SEED_START seeds)."""

TRAIN_SEED_START = 0
EVAL_SEED_START = 10**6


def train_seeds(n: int, start: int = TRAIN_SEED_START) -> list[int]:
    return list(range(start, start + n))


def eval_seeds(n: int, start: int = EVAL_SEED_START) -> list[int]:
    return list(range(start, start + n))
