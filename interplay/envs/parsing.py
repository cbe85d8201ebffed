"""Reading what an environment needs out of an agent's free-text reply.

Every function here takes any string (empty, unicode, a megabyte of noise) and returns None
when nothing could be read; none of them raises on agent text.
"""

from __future__ import annotations
