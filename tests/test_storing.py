"""Output bytes go from the node that made them straight to the store: never through Ray's
object store or a storage actor's memory, and never whole in a worker's or replica's
memory. On the `guarded` service, whose outputs go to S3 (SeaweedFS)."""

from __future__ import annotations

import hashlib

from tests.conftest import Api
from tests.support.servers import SeaweedS3

MIB = 1024 * 1024


def _s3_object(s3: SeaweedS3, url: str) -> tuple[int, str]:
    """(size, SHA-256) of the stored object behind an output URL, read back in chunks."""
    key = url.split(f"/{s3.bucket}/", 1)[1].split("?", 1)[0]
    body = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    for chunk in body.iter_chunks(MIB):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def test_a_500_mb_output_streams_from_its_node_to_s3_in_bounded_memory(guarded: Api, s3: SeaweedS3) -> None:
    process = guarded.process
    assert process is not None
    created = process.object_store_created_bytes()
    [task] = guarded.create({"task_name": "test.big", "megabytes": 500})
    [status] = guarded.wait([task["key"]], timeout=600)
    assert status["status"] == "success", status.get("error")
    result = status["result"]
    assert result["peak_growth_kib"] < 64 * 1024  # the worker never held the file
    assert process.object_store_created_bytes() - created < MIB  # nothing of it went through Ray
    assert all(peak < 400 * 1024 for peak in process.peak_memory_kib("ray::StorageActor").values())
    assert _s3_object(s3, result["output"]) == (500 * MIB, result["sha256"])
