"""Dragon: the Stupeflix Tasks API v2 on Ray.

Python users on the cluster can skip HTTP::

    import dragon
    d = dragon.connect(account="dev")
    [status] = d.create({"task_name": "hello", "name": "John"}, block=True)
    created = await d.aio.create({"task_name": "hello", "name": "Jane"})  # on a running loop
    [ref] = d.submit({"task_name": "hello", "name": "Ray"})          # ray.get(ref): its final status
    dragon.batch("image.thumb", "photos.csv", "thumbs.parquet", {"width": 200})
"""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncDragon", "Dragon", "batch", "connect"]


def __getattr__(name: str) -> Any:
    """Lazy, so workers that only need the media helpers do not import Ray's client."""
    if name in __all__:
        from dragon import handles

        return getattr(handles, name)
    raise AttributeError(name)
