"""interplay.seeds: training/held-out seed ranges, the key of a task, seeded global generators."""

from __future__ import annotations

import random

import numpy as np
import pytest

from interplay.seeds import (
    EVAL_SEED_START,
    GlobalRNG,
    check_train_seeds,
    eval_seeds,
    parse_task_key,
    task_key,
    train_seeds,
)


def test_training_seeds_never_reach_the_held_out_ones():
    assert train_seeds(3, 10) == [10, 11, 12] and eval_seeds(2) == [EVAL_SEED_START, EVAL_SEED_START + 1]
    assert train_seeds(5, EVAL_SEED_START - 5)[-1] == EVAL_SEED_START - 1
    start = EVAL_SEED_START - 5
    with pytest.raises(ValueError, match=rf"seed_start \+ tasks \({start} \+ 6\) reaches the held-out seeds"):
        train_seeds(6, start)
    with pytest.raises(ValueError, match="use fewer episodes or a smaller seed_start"):
        check_train_seeds(1, EVAL_SEED_START, "episodes")


def test_task_key_names_environment_seed_and_kwargs_and_inverts():
    assert task_key("interplay/Maze-v0", 12) == "interplay/Maze-v0 seed=12"
    key = task_key("interplay/Maze-v0", -3, {"width": 5, "size": 4})
    assert key == 'interplay/Maze-v0 seed=-3 {"size": 4, "width": 5}'
    assert key == task_key("interplay/Maze-v0", -3, {"size": 4, "width": 5})  # order does not matter
    assert parse_task_key(key) == ("interplay/Maze-v0", -3, {"size": 4, "width": 5})
    assert parse_task_key("interplay/Maze-v0 seed=12") == ("interplay/Maze-v0", 12, {})
    for junk in ("interplay/Maze-v0", "a b seed=1", "x seed=1 {bad", None, 3):
        assert parse_task_key(junk) is None


def test_global_rng_is_seeded_like_the_global_generators_and_leaves_them_alone():
    rng = GlobalRNG(7)
    random.seed(1)
    np.random.seed(1)
    outside = random.random(), np.random.rand()
    random.seed(1)
    np.random.seed(1)
    with rng.active():
        first = random.random(), np.random.rand()
    with rng.active():
        second = random.random(), np.random.rand()
    assert (random.random(), np.random.rand()) == outside  # the caller's generators did not move
    random.seed(7)
    np.random.seed(7)
    assert [random.random() for _ in range(2)] == [first[0], second[0]]
    assert [np.random.rand() for _ in range(2)] == [first[1], second[1]]
