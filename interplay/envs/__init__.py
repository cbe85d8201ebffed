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
