"""The built-in environments. Each module registers its ids in ``register_builtin``."""

from interplay.envs.core import TextEnv

__all__ = ["TextEnv", "register_builtin"]


def register_builtin() -> None:
    from interplay.registry import register

    register(
        "interplay/Maze-v0",
        "interplay.envs.maze:MazeEnv",
        "Find the goal in a procedurally generated maze; size is the horizon knob.",
    )
    # Measured variants are ids of their own (as TextArena registers its game variants): the id and its
    # kwargs say everything about the task, the turn limit included, and the observation states it.
    # 12 turns: short episodes make GRPO steps faster, and the cap fits nearly every 4x4 shortest path
    # (benchmarks/RESULTS.md, "Turn limit of interplay/Maze-4x4-v0").
    register(
        "interplay/Maze-4x4-v0",
        "interplay.envs.maze:MazeEnv",
        "Maze-v0 at 4x4 (compact observation), reach the goal in 12 moves: the default training task.",
        kwargs={"size": 4, "max_turns": 12},
    )
    register(
        "interplay/MathFeedback-v0",
        "interplay.envs.math:MathFeedbackEnv",
        "Solve a math problem in up to K attempts, with a teacher's feedback after each wrong one.",
    )
    register(
        "interplay/CodeBreaker-v0",
        "interplay.envs.codebreaker:CodeBreakerEnv",
        "Find a secret 3-digit code from digit-by-digit higher/lower hints (learnable in minutes).",
    )

    from interplay.envs.textarena import register_games

    register_games()

    from interplay.envs.reasoning_gym import register_reasoning_gym

    register_reasoning_gym()

    # A client of an environment served elsewhere (`interplay serve`): gym.make it with url=...
    # Listed as unavailable (it needs a url), so nothing that iterates over list_envs() makes it bare.
    import gymnasium as gym

    from interplay.registry import register_unavailable

    gym.register(id="interplay/Remote-v0", entry_point="interplay.integrations.openenv_client:RemoteEnv")
    register_unavailable(
        "interplay/Remote-v0",
        "a client, not an environment: gym.make('interplay/Remote-v0', url='http://HOST:PORT') plays the "
        "environment an `interplay serve ENV_ID --port PORT` server serves (needs the openenv extra).",
    )
