"""S3 (or any S3-compatible server) through boto3, for clusters."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from dragon.config import Settings
from dragon.storage import Backend, Entry, check_parts
from dragon.storage.cache import NodeCache


class S3Backend(Backend):
    def __init__(self, settings: Settings):
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        self.public_url = settings.s3_public_url.rstrip("/") if settings.s3_public_url else None
        self.url_expiry = settings.s3_url_expiry
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
        )
        endpoint = urlsplit(self.client.meta.endpoint_url)
        self._presigned_base = f"{endpoint.scheme}://{endpoint.netloc}/{self.bucket}/"
        self._cache = NodeCache(settings.node_cache_dir, settings.node_cache_bytes, settings.node_cache_seconds)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _name(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def put(self, name: str, source: Path, content_type: str) -> None:
        self.client.upload_file(str(source), self.bucket, self._key(name), ExtraArgs={"ContentType": content_type})
        self._cache.keep(name, source)

    def local_path(self, name: str) -> Path | None:
        """This node's copy of what it stored (dragon/storage/cache.py)."""
        return self._cache.path(name)

    def read(self, name: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(name) from None
            raise
        yield from body.iter_chunks(1024 * 1024)

    def list(self, prefix: str) -> list[Entry]:
        entries = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for obj in page.get("Contents", []):
                entries.append(Entry(self._name(obj["Key"]), obj["Size"], obj["LastModified"]))
        return sorted(entries, key=lambda e: e.name)

    def delete(self, names: builtins.list[str]) -> None:
        for i in range(0, len(names), 1000):
            objects = [{"Key": self._key(n)} for n in names[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        self._cache.forget(names)  # this node's copies; other nodes' expire

    def start_upload(self, name: str, content_type: str) -> str:
        answer = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._key(name), ContentType=content_type)
        return answer["UploadId"]

    def put_part(self, name: str, upload: str, number: int, source: Path) -> None:
        with open(source, "rb") as body:
            self._upload_call(
                self.client.upload_part,
                Bucket=self.bucket,
                Key=self._key(name),
                UploadId=upload,
                PartNumber=number,
                Body=body,
            )

    def finish_upload(self, name: str, upload: str, part_bytes: int) -> int:
        parts = []
        for page in self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=self._key(name), UploadId=upload
        ):
            parts += [
                {"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]} for p in page.get("Parts", [])
            ]
        parts.sort(key=lambda p: p["PartNumber"])
        check_parts([(p["PartNumber"], p["Size"]) for p in parts], part_bytes)
        self._upload_call(
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=self._key(name),
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]},
        )
        return sum(p["Size"] for p in parts)

    def abort_upload(self, name: str, upload: str) -> None:
        self._upload_call(self.client.abort_multipart_upload, Bucket=self.bucket, Key=self._key(name), UploadId=upload)

    def _upload_call(self, method: Any, **params: Any) -> Any:
        try:
            return method(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "NoSuchKey", "404"):
                raise FileNotFoundError(params.get("UploadId", "")) from None
            raise

    def url(self, name: str) -> str:
        if self.public_url:
            return f"{self.public_url}/{self._key(name)}"
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(name)}, ExpiresIn=self.url_expiry
        )

    def name_of(self, url: str) -> str | None:
        for base in filter(None, (f"{self.public_url}/" if self.public_url else None, self._presigned_base)):
            if url.startswith(base):
                key = url[len(base) :].split("?")[0]
                if not self.prefix or key.startswith(self.prefix + "/"):
                    return self._name(key)
        return None
