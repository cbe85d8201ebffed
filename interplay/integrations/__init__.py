"""Adapters from interplay environments to other tools.

- ``interplay.integrations.trl``: ``environment_factory(env_id)`` for TRL's
  ``GRPOTrainer(environment_factory=...)``, where TRL runs the tool-calling loop (and vLLM, several GPUs).
- ``interplay.integrations.openenv``: ``interplay serve`` (any id as an OpenEnv server) and
  ``RemoteEnv`` (``interplay/Remote-v0``, ``url=``), a TextEnv played by such a server; it re-exports
  ``openenv_server`` (the server and its limits, ``server_limits``), ``openenv_client`` (RemoteEnv, pools),
  ``openenv_wire`` (the wire types) and ``openenv_internals`` (tested OpenEnv versions, internals relied on).
- ``interplay.integrations.local_servers``: ``--env-workers N``, environment servers started and stopped by
  interplay.

Submodules are imported on demand, so ``import interplay`` never pulls in their dependencies.
"""
