"""The object store: originals and thumbnails in one bucket, through any S3 API (boto3, path-style).

Path-style addressing (`http://host/bucket/key`) because SeaweedFS, MinIO and in-cluster endpoints
have no per-bucket DNS names. Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, or a pod's role). The client is thread-safe and shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

CHUNK = 256 * 1024


class ObjectMissing(LookupError):
    """No object under that key (a photo whose upload never reached the store, or a deleted one)."""


class Store:
    def __init__(self, endpoint: str, bucket: str, region: str = "us-east-1", *, timeout: float = 30,
                 max_connections: int = 32, credentials: dict[str, str] | None = None) -> None:  # fmt: skip
        config = Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=max_connections,
        )
        self.bucket = bucket
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint or None, region_name=region, config=config, **(credentials or {})
        )

    def ensure_bucket(self) -> None:
        """Create the bucket if it is not there (idempotent; two processes may race to do it)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    def ping(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404"}:
                raise ObjectMissing(f"no object {key!r} in bucket {self.bucket!r}") from None
            raise

    def open(self, key: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        """The object as an iterator of chunks (for a streamed response) and its length and type."""
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404"}:
                raise ObjectMissing(f"no object {key!r} in bucket {self.bucket!r}") from None
            raise
        body = obj["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return chunks(), {"length": obj.get("ContentLength"), "content_type": obj.get("ContentType")}

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
