"""Registry, gym.make paths, plugins (the example package in examples/plugin, really installed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

import interplay

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, path: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120
    )


def test_list_envs_has_builtins_with_descriptions():
    entries = {e.id: e for e in interplay.list_envs()}
    for env_id in ("interplay/Maze-v0", "interplay/MathFeedback-v0"):
        assert env_id in entries
        assert len(entries[env_id].description) > 10
        assert "\n" not in entries[env_id].description


def test_make_after_import():
    env = gym.make("interplay/Maze-v0")
    obs, info = env.reset(seed=0)
    assert isinstance(obs, str) and obs
    assert info["turn"] == 0


def test_make_with_module_prefix_needs_no_import():
    result = run_python(
        """
        import sys, gymnasium as gym
        assert "interplay" not in sys.modules
        env = gym.make("interplay:interplay/Maze-v0")
        print(env.reset(seed=1)[0][:20])
        """
    )
    assert result.returncode == 0, result.stderr


def test_unknown_id_lists_close_matches():
    with pytest.raises(gym.error.Error, match="Did you mean.*interplay/Maze-v0"):
        interplay.make("interplay/Maez-v0")


def test_unavailable_env_says_why():
    from interplay.registry import register_unavailable

    register_unavailable("interplay/NeedsTheInternet-v0", "needs an API key")
    with pytest.raises(gym.error.Error, match="needs an API key"):
        interplay.make("interplay/NeedsTheInternet-v0")
    listed = {e.id: e for e in interplay.list_envs(include_unavailable=True)}
    assert listed["interplay/NeedsTheInternet-v0"].reason == "needs an API key"
    assert "interplay/NeedsTheInternet-v0" not in {e.id for e in interplay.list_envs()}


def test_register_rejects_malformed_id():
    with pytest.raises(ValueError, match="namespace/Name-v0"):
        interplay.register("Maze", "interplay.envs.maze:MazeEnv", "bad id")


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT / "examples" / "plugin")],
        check=True, capture_output=True, timeout=300,
    )
    return target


def test_example_plugin_installs_and_makes_by_id(installed_plugin):
    result = run_python(
        """
        import gymnasium as gym, interplay
        assert any(e.id == "example/GuessNumber-v0" for e in interplay.list_envs())
        env = gym.make("example/GuessNumber-v0")
        obs, info = env.reset(seed=3)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(env.unwrapped.expert_action())
            done = terminated or truncated
        assert info["success"] and reward == 1.0, info
        print("ok", info["turn"])
        """,
        installed_plugin,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_broken_plugin_warns_and_others_still_work(installed_plugin, tmp_path):
    broken = tmp_path / "broken_plugin-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text("[interplay.envs]\nbroken = broken_plugin_module:register\n")
    (tmp_path / "broken_plugin_module.py").write_text("raise ImportError('missing dependency foo')\n")
    result = run_python(
        f"""
        import sys, warnings
        sys.path.insert(0, {str(installed_plugin)!r})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import interplay, gymnasium as gym
        messages = [str(w.message) for w in caught]
        assert any("'broken'" in m and "missing dependency foo" in m for m in messages), messages
        gym.make("interplay/Maze-v0").reset(seed=0)
        gym.make("example/GuessNumber-v0").reset(seed=0)
        print("ok")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_registering_an_id_again_warns_with_both_origins():
    from interplay.registry import describe

    env_id = "interplay/ReRegistered-v0"

    def register_second() -> None:
        interplay.register(env_id, "interplay.envs.codebreaker:CodeBreakerEnv", "second")

    interplay.register(env_id, "interplay.envs.maze:MazeEnv", "first")
    with pytest.warns(RuntimeWarning, match=r"registered again.*first interplay\.envs\.maze:MazeEnv .*test_registry"
                                            r".*now interplay\.envs\.codebreaker:CodeBreakerEnv .*test_registry"):
        register_second()
    assert describe(env_id) == "second" and gym.spec(env_id).entry_point.endswith("CodeBreakerEnv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_second()  # the same registration from the same place (a module reloaded): silent
    gym.register(id="interplay/GymFirst-v0", entry_point="interplay.envs.maze:MazeEnv")
    with pytest.warns(RuntimeWarning, match="gymnasium.register"):
        interplay.register("interplay/GymFirst-v0", "interplay.envs.maze:MazeEnv", "now listed")
    from interplay import registry

    for made_here in (env_id, "interplay/GymFirst-v0"):  # other tests list every id
        del gym.registry[made_here]
        registry._ENTRIES.pop(made_here)


def test_max_episode_steps_is_interplays_turn_limit():
    from interplay.envs.core import TurnLimit

    env = gym.make("interplay/Maze-v0", max_episode_steps=5)
    observation, _ = env.reset(seed=0)
    assert env.unwrapped.max_turns > 5 and observation.endswith("Turn limit: 5 turns.")  # the agent is told
    for turn in range(1, 6):
        _, _, terminated, truncated, info = env.step("nonsense")
        assert (terminated, truncated) == (False, turn == 5)
    assert info["success"] is False and info["outcome"].startswith("r")  # the end-of-episode keys
    assert env.unwrapped.turn_limit == 5
    # A reset without the TimeLimit around it (and a second reset through it) sees the right limit.
    assert not env.unwrapped.reset(seed=0)[0].endswith("turns.") and env.unwrapped.turn_limit > 5
    assert env.reset(seed=0)[0].endswith("Turn limit: 5 turns.")
    made = interplay.make("interplay/Maze-v0", max_episode_steps=5)
    assert isinstance(made, TurnLimit) and made.spec.max_episode_steps is None
    assert [w.name for w in made.spec.additional_wrappers] == ["TurnLimit"]
