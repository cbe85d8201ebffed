"""interplay: train language-model agents by interaction.

Importing the package registers the built-in environments (``interplay/Maze-v0``,
``interplay/MathFeedback-v0``, TextArena games, ...) and loads third-party plugins.
"""

from interplay.registry import list_envs, make, register

__version__ = "0.1.0"
__all__ = ["__version__", "list_envs", "make", "register"]

from interplay import envs as _envs  # noqa: E402  (registers the built-in environments)
from interplay.registry import load_plugins as _load_plugins  # noqa: E402

_envs.register_builtin()
_load_plugins()
