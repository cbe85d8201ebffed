"""Adapters from interplay environments to other tools.

- ``interplay.integrations.trl``: ``environment_factory(env_id)`` for TRL's
  ``GRPOTrainer(environment_factory=...)``, where TRL runs the tool-calling loop (and vLLM, several GPUs).
- ``interplay.integrations.openenv``: ``interplay serve`` (any id as an OpenEnv server) and
  ``RemoteEnv`` (``interplay/Remote-v0``, ``url=``), a TextEnv played by such a server.

Submodules are imported on demand, so ``import interplay`` never pulls in their dependencies.
"""
