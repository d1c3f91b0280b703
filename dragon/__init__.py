"""Dragon: the Stupeflix Tasks API v2 on Ray.

Python users on the cluster can skip HTTP::

    import dragon
    d = dragon.connect(account="dev")
    [status] = d.create({"task_name": "hello", "name": "John"}, block=True)
"""

from __future__ import annotations

from dragon.handles import Dragon, connect

__all__ = ["Dragon", "connect"]
