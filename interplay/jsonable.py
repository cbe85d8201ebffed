"""JSON-safe values: how infos, manifests and wire messages are written (trajectories, the viewer, OpenEnv)."""

from __future__ import annotations

import math
from typing import Any


def jsonable(value: Any) -> Any:
    """Info values as JSON-safe Python (numpy scalars/arrays, tuples, sets; anything else as str)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist())
    return str(value)
