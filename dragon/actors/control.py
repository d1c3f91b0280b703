"""The control actor: the one detached actor of the control plane, parent of the shards.

Ray binds the worker processes that run a task to the detached actor at the root of the
task's tree of owners, and does not lend them to another tree. Were every shard a
detached actor of its own, each would grow its own pool of worker processes on every
node, and a node would start new ones (and kill idle ones) whenever work moved from one
shard to another. So the shards are children of this actor: one tree, one pool.

It does nothing else. If it dies, its shards die with it; Ray restarts it, it starts
them again, and they queue again what had not ended, as after any restart.
"""

from __future__ import annotations

from typing import Any

import ray

from dragon.actors.shard import TaskShard, actor_name
from dragon.config import Settings
from dragon.placement import control_options

ACTOR_NAME = "dragon-control"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Control:
    def __init__(self, settings: Settings):
        placement = control_options(settings)
        self._shards = [
            TaskShard.options(name=actor_name(i), namespace=settings.ray_namespace, get_if_exists=True,
                              **placement).remote(settings, i)
            for i in range(settings.shards)
        ]

    def ready(self) -> list[dict[str, Any]]:
        """Once every shard has queued again its unfinished tasks."""
        return ray.get([shard.ready.remote() for shard in self._shards])
