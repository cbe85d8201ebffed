"""interplay/Maze-v0: generation, determinism, the expert, observations, and the move parser."""

from __future__ import annotations

import random
import re
import time
import warnings
from collections import deque

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import interplay  # noqa: F401  (registers interplay/Maze-v0)
from interplay.envs.maze import DIRECTIONS, MOVE_SYNONYMS, MazeEnv
from interplay.envs.parsing import extract_last_choice

OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}


def edges_and_reachable(env: MazeEnv) -> tuple[int, int]:
    """Undirected passages, and cells reachable from cell 0; checks both sides of every passage."""
    edges = 0
    for cell, dirs in enumerate(env._open):
        for d in dirs:
            other = env._neighbor(cell, d)
            assert other is not None, f"cell {cell} opens {d} out of the maze"
            assert OPPOSITE[d] in env._open[other], "a passage must be open from both sides"
            edges += 1
    seen, queue = {0}, deque([0])
    while queue:
        cell = queue.popleft()
        for d in env._open[cell]:
            if (nb := env._neighbor(cell, d)) not in seen:
                seen.add(nb)
                queue.append(nb)
    return edges // 2, len(seen)


def play(env: MazeEnv, seed: int, replies: list[str], consult_expert: bool = False) -> list:
    record = [env.reset(seed=seed)]
    for reply in replies:
        if consult_expert:
            env.expert_action()
        record.append(env.step(reply))
        if record[-1][2] or record[-1][3]:
            break
    return record


@pytest.mark.parametrize("width,height", [(2, 2), (4, 4), (8, 5), (3, 12), (15, 15), (40, 40)])
def test_generated_mazes_are_perfect(width, height):
    env = MazeEnv(width=width, height=height)
    for seed in range(20):
        env.reset(seed=seed)
        edges, reachable = edges_and_reachable(env)
        cells = width * height
        assert reachable == cells, "connected"
        assert edges == cells - 1, "connected with cells - 1 passages: a tree, so no cycles"


def test_loops_open_cycles_but_keep_passages_consistent():
    env = MazeEnv(size=8, loops=0.5)
    env.reset(seed=0)
    edges, reachable = edges_and_reachable(env)
    assert reachable == 64 and edges > 63


def test_same_seed_same_episode_byte_for_byte():
    replies = ["up", "left", "banana", "go down", "r", "→", "north", "W"] * 3
    for observation in ["compact", "local", "full"]:
        first = play(MazeEnv(size=6, observation=observation), 11, replies)
        again = play(MazeEnv(size=6, observation=observation), 11, replies)
        assert repr(first) == repr(again)
        assert repr(first) != repr(play(MazeEnv(size=6, observation=observation), 12, replies))


@pytest.mark.parametrize("size", [4, 8, 15])
def test_bfs_expert_solves_every_maze_along_a_shortest_path(size):
    env = MazeEnv(size=size, expert="bfs")
    for seed in range(200):
        _, info = env.reset(seed=seed)
        shortest = info["shortest_path"]
        assert env.max_turns >= max(3 * shortest, 4)
        for _ in range(shortest):
            obs, reward, terminated, truncated, step_info = env.step(env.expert_action())
            assert step_info["optimal"] and not truncated
        assert terminated and reward == 1.0 and step_info["success"] is True
        assert step_info["outcome"] == env.outcome() == "r{}c{}".format(*divmod(env._goal, size))
        assert env.expert_action() is None and env.expert_action_probs() == {}


def test_bfs_expert_is_uniform_among_optimal_moves_and_seeded():
    # With every wall removed there are often two optimal moves: the expert must split evenly,
    # and the same seed must give the same choices.
    env = MazeEnv(size=6, loops=1.0, expert="bfs")
    first_choice, choices_by_seed = [], []
    for seed in range(200):
        env.reset(seed=seed)
        choices = []
        while not env.finished:
            probs = env.expert_action_probs()
            action = env.expert_action()
            assert action in probs and sum(probs.values()) == pytest.approx(1.0)
            if len(probs) == 2:
                assert set(probs.values()) == {0.5}
                first_choice.append(action == min(probs))
            choices.append(action)
            env.step(action)
        choices_by_seed.append(choices)
    assert len(first_choice) > 300
    assert 0.4 < sum(first_choice) / len(first_choice) < 0.6
    env.reset(seed=5)
    again = []
    while not env.finished:
        again.append(env.expert_action())
        env.step(again[-1])
    assert again == choices_by_seed[5]


def test_expert_in_a_perfect_maze_is_certain_and_speaks_the_instructed_vocabulary():
    compact, full = MazeEnv(), MazeEnv(observation="full")
    compact.reset(seed=1)
    full.reset(seed=1)
    assert list(compact.expert_action_probs().values()) == [1.0]
    assert compact.expert_action() in "udlr" and full.expert_action() in DIRECTIONS
    assert MOVE_SYNONYMS[compact.expert_action()] == full.expert_action()
    assert MazeEnv().expert_action() is None, "no episode yet"


@pytest.mark.parametrize("expert", ["explorer", "bfs"])
def test_expert_calls_do_not_change_the_episode(expert):
    replies = ["down", "right", "up", "left"] * 5
    plain = play(MazeEnv(size=5, loops=0.3, expert=expert), 3, replies)
    assert repr(plain) == repr(play(MazeEnv(size=5, loops=0.3, expert=expert), 3, replies, consult_expert=True))
    assert repr(plain) == repr(play(MazeEnv(size=5, loops=0.3, expert="bfs" if expert == "explorer" else "explorer"),
                                    3, replies)), "the expert kind does not change the task"


def explorer_episode(env: MazeEnv, seed: int) -> tuple[list[str], dict]:
    """Play the expert to the end; check every move is certain, open, and the episode is solved in time."""
    _, info = env.reset(seed=seed)
    actions = []
    while not env.finished:
        probs, action = env.expert_action_probs(), env.expert_action()
        assert probs == {action: 1.0}
        _, reward, terminated, truncated, step_info = env.step(action)
        assert not step_info["wall_bump"] and not step_info["invalid_action"]
        actions.append(action)
    assert terminated and not truncated and step_info["success"] and reward == 1.0
    assert env.expert_action() is None and env.expert_action_probs() == {}
    return actions, info


@pytest.mark.parametrize("size,loops", [(2, 0.0), (4, 0.0), (8, 0.0), (15, 0.0), (6, 0.3), (8, 1.0)])
def test_explorer_solves_every_maze_within_the_turn_limit_and_is_deterministic(size, loops):
    env, again = MazeEnv(size=size, loops=loops, expert="explorer"), MazeEnv(size=size, loops=loops, expert="explorer")
    longer = 0
    for seed in range(200):
        actions, info = explorer_episode(env, seed)
        shortest, cells = info["shortest_path"], size * size
        assert info["max_turns"] == max(3 * shortest, len(actions) + shortest, 4), "room for the explorer"
        if loops == 0.0:  # depth-first in a tree: every passage walked at most twice, the goal's way once
            assert len(actions) <= 2 * (cells - 1) - shortest
        longer += len(actions) > shortest
        assert explorer_episode(again, seed)[0] == actions
    if size > 2 and loops < 1.0:  # (with no inner walls, heading for the goal is a shortest path)
        assert longer > 20, "it explores: it does not know the shortest path"


def test_explorer_prefers_unvisited_cells_nearest_the_goal():
    env = MazeEnv(size=8, expert="explorer")
    for seed in range(50):
        env.reset(seed=seed)
        visited = {env._pos}
        while not env.finished:
            fresh = {d: env._manhattan(env._neighbor(env._pos, d))
                     for d in env._open[env._pos] if env._neighbor(env._pos, d) not in visited}
            move = MOVE_SYNONYMS[env.expert_action()]
            if fresh:
                assert move in fresh and fresh[move] == min(fresh.values())
                assert move == min(fresh, key=lambda d: (fresh[d], DIRECTIONS.index(d))), "ties: u, d, l, r"
            else:
                assert env._neighbor(env._pos, move) in visited, "backtracking stays on known ground"
            env.step(move)
            visited.add(env._pos)


def test_explorer_ignores_what_the_agent_has_not_seen_and_bfs_does_not():
    # Open every wall between two cells the agent has not stood on: the part of the maze it has seen is
    # unchanged, so the explorer must act the same; the shortest path often changes, and with it bfs.
    bfs_changed = 0
    for seed in range(100):
        actions = {}
        for expert in ["explorer", "bfs"]:
            env = MazeEnv(size=6, expert=expert)
            env.reset(seed=seed)
            for _ in range(3):
                if not env.finished:
                    env.step(env.expert_action())
            if env.finished:
                break
            before = env.expert_action()
            for cell in range(36):
                for d in ("down", "right"):
                    nb = env._neighbor(cell, d)
                    if nb is not None and cell not in env._visited and nb not in env._visited:
                        opened = [set(dirs) for dirs in env._open]
                        env._carve(cell, d, opened)
                        env._open = [tuple(x for x in DIRECTIONS if x in dirs) for dirs in opened]
            env._dist = env._distances(env._goal)
            actions[expert] = (before, env.expert_action())
        else:
            assert actions["explorer"][0] == actions["explorer"][1]
            bfs_changed += actions["bfs"][0] != actions["bfs"][1]
    assert bfs_changed > 0


def test_explorer_takes_over_from_any_state():
    # DAgger labels the learner's states: after a random walk the explorer still finishes without bumps.
    env = MazeEnv(size=6, max_turns=1000, expert="explorer")
    for seed in range(100):
        env.reset(seed=seed)
        rng = random.Random(seed)
        for _ in range(10):
            if not env.finished:
                env.step(rng.choice(DIRECTIONS))
        moves = 0
        while not env.finished:
            _, _, _, _, info = env.step(env.expert_action())
            assert not info["wall_bump"]
            moves += 1
        assert info["success"] and moves <= 2 * 35


@pytest.mark.parametrize(
    "reply,move",
    [
        ("up", "up"),
        ("DOWN", "down"),
        ("L", "left"),
        ("East", "right"),
        ("n", "up"),
        ("s.", "down"),
        ("↑", "up"),
        ("go ←", "left"),
        ("I think I should go left. Final answer: **right**", "right"),
        ("down the road, then up", "up"),
        ("Move: 'w'", "left"),
        ("I'd say it's e.g. west", "left"),  # "d" of I'd, "s" of it's and "e" of e.g. are not moves
        ("u-turn, w/o thinking: d", "down"),
        ("up/down", None),
        ("banana", None),
        ("", None),
        ("123 !?", None),
        ("upstairs and downtown", None),
    ],
)
def test_extract_last_choice(reply, move):
    assert extract_last_choice(reply, MOVE_SYNONYMS) == move


def test_extract_last_choice_is_fast_on_a_megabyte():
    for text, expected in [
        ("u " * 500_000, "up"),
        ("a" * 1_000_000, None),
        ("(" * 999_995 + " left", "left"),
    ]:
        start = time.perf_counter()
        assert extract_last_choice(text, MOVE_SYNONYMS) == expected
        assert time.perf_counter() - start < 1.0


def test_extract_last_choice_rejects_bad_synonyms():
    with pytest.raises(ValueError, match="synonyms must map"):
        extract_last_choice("up", {})
    with pytest.raises(ValueError, match="ignoring case"):
        extract_last_choice("up", {"Up": "up", "UP": "up"})


def find_wall(env: MazeEnv) -> str:
    return next(d for d in DIRECTIONS if d not in env._open[env._pos])


def test_wall_bump_costs_a_turn_and_says_which_moves_are_open():
    env = MazeEnv(size=5, observation="full")
    env.reset(seed=4)
    wall, before = find_wall(env), env._pos
    obs, reward, terminated, truncated, info = env.step(f"I will go {wall}")
    open_dirs = ", ".join(env._open[before])
    assert obs.startswith(f"You hit a wall going {wall}; open: {open_dirs}.\n")
    assert info["wall_bump"] is True and info["invalid_action"] is False and info["optimal"] is False
    assert env._pos == before and info["turn"] == 1 and reward == 0.0

    compact = MazeEnv(size=5)
    compact.reset(seed=4)
    obs, *_ = compact.step(wall)
    assert obs.startswith(f"wall {wall[0]}; at ")


def test_unreadable_reply_is_flagged_and_costs_a_turn():
    for observation, message in [("compact", "no move read, reply u/d/l/r; "), ("full", "No move found")]:
        env = MazeEnv(observation=observation)
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step("hmm, let me think")
        assert obs.startswith(message)
        assert info["invalid_action"] is True and info["move"] is None and info["turn"] == 1


def test_compact_observation_is_short():
    env = MazeEnv()
    first, info = env.reset(seed=2)
    assert len(first) < 100 and "u/d/l/r" in first
    assert first.endswith(
        f"at {info['start']} goal {info['goal']} open {''.join(d[0] for d in env._open[env._pos])}"
    )
    obs, *_ = env.step(env.expert_action())
    assert re.fullmatch(r"at \d\d goal \d\d open [udlr]{1,4}", obs) and len(obs) <= 21
    big = MazeEnv(size=15)
    big.reset(seed=2)
    obs, *_ = big.step(big.expert_action())
    assert re.fullmatch(r"at \d+,\d+ goal \d+,\d+ open [udlr]{1,4}", obs)


@pytest.mark.parametrize("radius", [1, 2])
def test_local_observation_is_a_window_around_the_agent(radius):
    env = MazeEnv(size=8, observation="partial", view_radius=radius)
    first, _ = env.reset(seed=6)
    assert "Legend: @ you, G goal, # wall, . open." in first
    obs, *_ = env.step(env.expert_action())
    status, *rows = obs.split("\n")
    side = 4 * radius + 3
    assert status.startswith("at ") and "Legend" not in obs
    assert len(rows) == side and all(len(row) == side for row in rows)
    assert rows[side // 2][side // 2] == "@" and set("".join(rows)) <= set("@G#.")


def test_full_observation_and_render_show_the_whole_map():
    env = MazeEnv(width=6, height=3, observation="full")
    first, _ = env.reset(seed=8)
    assert "Legend" in first
    obs, *_ = env.step(env.expert_action())
    rows = obs.split("\n")
    assert len(rows) == 7 and all(len(row) == 13 for row in rows)
    assert obs.count("@") == 1 and obs.count("G") <= 1 and "Legend" not in obs
    compact = MazeEnv(width=6, height=3)
    compact.reset(seed=8)
    compact.step(compact.expert_action())
    assert compact.render() == obs, "render() shows the full map whatever the observation mode"


def test_step_cost_and_goal_reward():
    env = MazeEnv(size=5, step_cost=0.01)
    _, info = env.reset(seed=9)
    rewards = [env.step(find_wall(env))[1], env.step("nonsense")[1]]
    while not env.finished:
        rewards.append(env.step(env.expert_action())[1])
    assert rewards[:-1] == [-0.01] * (len(rewards) - 1)
    assert rewards[-1] == pytest.approx(0.99)


def test_turn_limit_truncates_a_failing_episode():
    env = MazeEnv(size=4, min_distance=6)
    _, info = env.reset(seed=0)
    assert info["shortest_path"] >= 6 and info["max_turns"] == env.max_turns >= 3 * info["shortest_path"]
    start = env.outcome()
    for _ in range(env.max_turns):
        obs, reward, terminated, truncated, info = env.step(find_wall(env))
    assert truncated and not terminated and info["success"] is False and info["outcome"] == start
    fixed = MazeEnv(max_turns=7)
    fixed.reset(seed=0)
    assert fixed.max_turns == 7


def test_the_registered_4x4_variant_states_and_enforces_its_12_turns():
    env = gym.make("interplay/Maze-4x4-v0")
    assert env.spec.kwargs == {"size": 4, "max_turns": 12}
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        assert "4x4 maze" in obs and "Reach goal in 12 moves" in obs and info["max_turns"] == 12
        steps = [env.step(find_wall(env.unwrapped)) for _ in range(12)]
        assert [s[3] for s in steps] == [False] * 11 + [True], "truncated at the 12th turn, not before"
    # Kwargs given to make() go on top of the id's; the limit stays the id's and is stated.
    obs, _ = gym.make("interplay/Maze-4x4-v0", observation="full").reset(seed=0)
    assert "reach the goal G in 12 moves" in obs


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"size": 0}, r"width must be an integer from 2 to 100, got 0"),
        ({"width": 101}, r"width must be an integer from 2 to 100"),
        ({"height": "4"}, r"height must be an integer from 2 to 100, got '4'"),
        ({"size": 4, "width": 5}, r"either size or width/height"),
        ({"observation": "map"}, r"use one of \['compact', 'full', 'local', 'partial'\]"),
        ({"view_radius": 0}, r"view_radius must be an integer from 1 to 4"),
        ({"min_distance": 7}, r"min_distance must be an integer from 1 to 6"),
        ({"loops": 2}, r"loops must be a probability from 0.0 to 1.0"),
        ({"step_cost": -0.01}, r"pass a number >= 0"),
        ({"max_turns": 0}, r"max_turns must be an integer from 1"),
        ({"expert": "dfs"}, r"expert='dfs' is not an expert; use one of \['bfs', 'explorer'\]"),
    ],
)
def test_bad_kwargs_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MazeEnv(**kwargs)


def test_gym_make_and_check_env():
    env = gym.make("interplay/Maze-v0", width=6, height=6, observation="full")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium warns that Text spaces are not Box spaces
        check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs.count("\n") == 13 and info["shortest_path"] >= 1
    assert "up, down, left or right" in env.unwrapped.system_prompt


def maze_tasks(size: int, seeds) -> list:
    env = MazeEnv(size=size)
    tasks = []
    for seed in seeds:
        env.reset(seed=seed)
        tasks.append((tuple(env._open), env._start, env._goal, env._dist[env._start]))
    return tasks


def test_held_out_mazes_are_the_generator_at_disjoint_seeds_and_small_ones_repeat():
    """The split the docstring states: same distribution, disjoint seeds; 3x3 mazes repeat, 5x5 do not."""
    from interplay.seeds import EVAL_SEED_START

    held_out = range(EVAL_SEED_START, EVAL_SEED_START + 300)
    train4, eval4 = maze_tasks(4, range(1000)), maze_tasks(4, held_out)
    mean = lambda tasks: sum(t[3] for t in tasks) / len(tasks)  # noqa: E731
    assert abs(mean(train4) - mean(eval4)) < 0.5  # shortest paths: no shift
    train3 = set(maze_tasks(3, range(2000)))
    # About 30% of held-out 3x3 mazes are among 2,000 training mazes (80% among 10,000).
    assert sum(t in train3 for t in maze_tasks(3, held_out)) / 300 > 0.2
    train5 = set(maze_tasks(5, range(1000)))
    assert not any(t in train5 for t in maze_tasks(5, held_out))
