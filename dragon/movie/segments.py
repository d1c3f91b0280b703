"""Rendering a movie's frames as segments on Ray workers, in parallel.

Each segment is a Ray generator task: it reports its frames as it renders them, then
hands back its file. Inputs are never put whole into the object store: a segment on the
task's own node reads the files where the task fetched them; one on another node copies
them from that node a chunk at a time (``CHUNK_BYTES``, at most ``CHUNKS_IN_FLIGHT``
at once), so no process holds a whole input in memory, whatever its size.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from dragon.errors import TaskError
from dragon.movie.render import Job

CHUNK_BYTES = 8 * 1024**2
CHUNKS_IN_FLIGHT = 4


@dataclass(frozen=True)
class Inputs:
    """Where a segment finds the files its pictures read: paths on the node ``node``."""

    node: str
    paths: dict[str, str]  # media key -> path on that node

    @classmethod
    def here(cls, files: dict[str, Path]) -> Inputs:
        return cls(ray.get_runtime_context().get_node_id(), {key: str(path) for key, path in files.items()})

    def localised(self, into: Path) -> dict[str, Path]:
        """The files as paths on this node: the same ones on the task's node, copies
        under ``into`` elsewhere."""
        if ray.get_runtime_context().get_node_id() == self.node and all(Path(p).is_file() for p in self.paths.values()):
            return {key: Path(path) for key, path in self.paths.items()}
        local = {}
        for i, (key, path) in enumerate(sorted(self.paths.items())):
            local[key] = into / f"input-{i}"
            copy_from_node(self.node, path, local[key])
        return local


def copy_from_node(node: str, path: str, dest: Path) -> None:
    """Copy ``path`` of node ``node`` to ``dest``, ``CHUNK_BYTES`` at a time."""
    reader = _read_chunk.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
    size = ray.get(reader.remote(path, 0, 0))[1]
    offsets = iter(range(0, size, CHUNK_BYTES))
    pending = [reader.remote(path, offset, CHUNK_BYTES) for offset, _ in zip(offsets, range(CHUNKS_IN_FLIGHT))]
    with dest.open("wb") as out:
        while pending:
            data, _ = ray.get(pending.pop(0))
            out.write(data)
            offset = next(offsets, None)
            if offset is not None:
                pending.append(reader.remote(path, offset, CHUNK_BYTES))


@ray.remote(num_cpus=0, max_retries=3)
def _read_chunk(path: str, offset: int, size: int) -> tuple[bytes, int]:
    """``size`` bytes of ``path`` from ``offset``, and the file's size."""
    with open(path, "rb") as file:
        file.seek(offset)
        return file.read(size), Path(path).stat().st_size


def render_segments(
    job: Job,
    inputs: Inputs,
    ranges: list[tuple[int, int]],
    into: Path,
    scratch_root: Path,
    progress: Callable[[int], None],
    *,
    parallel: int = 0,
    gpu: bool = False,
    helpers: Sequence[Any] = (),
    helper_slots: int = 1,
) -> list[Path]:
    """Each range of frames rendered by its own Ray task, at most ``parallel`` at once
    (0: as many as the cluster runs), each with half a GPU if ``gpu``. With ``helpers``
    (pool members, dragon/actors/pool.py, that keep a CUDA context) every segment renders
    in one of them instead, up to ``helper_slots`` at a time in each, the others waiting
    here for a free slot: a stateless segment beside a member could wait for the GPU
    share the member holds. A segment whose member dies is rendered again by a stateless
    task. ``progress`` hears the frames done so far, as segments render them. Returns the
    segment files, in order, under ``into``."""
    options: dict[str, Any] = {"num_cpus": 1, **({"num_gpus": 0.5} if gpu else {})}
    window = parallel or len(ranges)
    running: dict[ray.ObjectRefGenerator, int] = {}
    on_helper: dict[ray.ObjectRefGenerator, Any] = {}
    live = list(helpers)
    done = [0] * len(ranges)
    paths: dict[int, Path] = {}
    queue = [(i, True) for i in range(len(ranges))]  # (segment, to a helper if there is one)

    def given(helper: Any) -> int:
        return sum(h is helper for h in on_helper.values())

    def start_next() -> bool:
        """Starts the first queued segment, unless it waits for a helper's free slot."""
        i, pooled = queue[0]
        first, stop = ranges[i]
        if pooled and live:
            free = [h for h in live if given(h) < helper_slots]
            if not free:
                return False
            helper = min(free, key=given)
            generator = helper.segment.remote(job, inputs, first, stop, str(scratch_root))
            on_helper[generator] = helper
        else:
            generator = _segment.options(**options).remote(job, inputs, first, stop, str(scratch_root))
        queue.pop(0)
        running[generator] = i
        return True

    try:
        while queue or running:
            while queue and len(running) < window and start_next():
                pass
            ready = cast(ray.ObjectRefGenerator, ray.wait(list(running), num_returns=1)[0][0])
            i = running[ready]
            try:
                report = next(ready, None)
                value = None if report is None else ray.get(report)
            except (RayActorError, ActorUnavailableError):
                if ready not in on_helper:
                    raise
                live = [h for h in live if h is not on_helper[ready]]  # dead or restarting: not asked again
                del running[ready], on_helper[ready]
                queue.insert(0, (i, False))
                continue
            if report is None:  # the generator has ended
                del running[ready]
                on_helper.pop(ready, None)
            elif isinstance(value, bytes):
                paths[i] = into / f"segment-{i}.nut"
                paths[i].write_bytes(value)
            else:
                done[i] = max(done[i], cast(int, value))  # a segment rendered again counts from 0
                progress(sum(done))
    except RayTaskError as exc:
        if isinstance(exc.cause, TaskError):
            raise exc.cause from None
        raise
    finally:
        for generator in running:
            ray.cancel(generator)
    return [paths[i] for i in range(len(ranges))]


@ray.remote(max_retries=2)
def _segment(job: Job, inputs: Inputs, first: int, stop: int, scratch_root: str) -> Iterator[int | bytes]:
    """A segment in a stateless Ray task (see segment_frames)."""
    yield from segment_frames(job, inputs, first, stop, scratch_root)


def segment_frames(job: Job, inputs: Inputs, first: int, stop: int, scratch_root: str) -> Iterator[int | bytes]:
    """One range of frames: the count rendered so far (see :meth:`Movie.render`), then
    the segment file's bytes."""
    from dragon.movie.render import Movie

    work = Path(scratch_root) / f"segment-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        movie = Movie(job, inputs.localised(work))
        try:
            yield from movie.render(first, stop, work / "segment.nut", threads=1)
        finally:
            movie.close()
        yield (work / "segment.nut").read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
