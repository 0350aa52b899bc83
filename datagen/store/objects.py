"""Object storage under a store root: a local folder or ``s3://bucket/prefix``.

The store needs five primitives from its backend, and both backends give the
same guarantees:

- ``put_file`` / ``put_bytes``: write an object; readers never see a partial
  object (local: temp file + rename; S3: a PUT is atomic).
- ``put_bytes(..., create_only=True)``: fails with ``AlreadyExists`` if the key
  exists (local: ``os.link``, which is atomic and refuses an existing name;
  S3: ``If-None-Match: *``). This is the commit of a version.
- ``compare_and_swap(key, data, expected_etag)``: replace only if the object
  still has ``expected_etag`` (``None`` = must not exist); else ``Conflict``
  (local: an flock'd read-compare-write; S3: ``If-Match`` / ``If-None-Match``).
  Refs (``latest``, tags) move this way, so a stale writer is refused.
- ``get_bytes`` / ``get_with_etag`` / ``exists``, and listing (``list_dirs``,
  ``list_keys``) which only browsing and commit-time marker collection use:
  readers of a version never list.

S3 errors are classified: throttling, 5xx and connection resets are retried
with bounded exponential backoff and counted in ``retries``; others raise
``StoreError`` with a message that says what to fix (no such bucket, access
denied, bad endpoint). botocore's own retries are switched off so every retry
is ours and counted.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreError(RuntimeError):
    """A store operation failed for a reason the user must fix."""


class AlreadyExists(StoreError):
    """A create-only write found the key already there."""


class Conflict(StoreError):
    """A compare-and-swap found the object changed since it was read."""


class NotFound(StoreError):
    """The key does not exist."""


def etag_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ----------------------------------------------------------------------------- local


class LocalObjects:
    """Objects as files under a local folder."""

    kind = "local"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.retries = 0

    def __repr__(self) -> str:
        return f"LocalObjects({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / key

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def storage_options(self) -> dict[str, str] | None:
        return None

    def _tmp(self, final: Path) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.with_name(f".{final.name}.tmp-{os.getpid()}-{random.getrandbits(32):08x}")

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        final = self.path(key)
        tmp = self._tmp(final)
        # Same filesystem: a hard link is a free copy; else copy.
        try:
            os.link(local_path, tmp)
        except OSError:
            import shutil

            shutil.copyfile(local_path, tmp)
        os.replace(tmp, final)

    def put_bytes(self, key: str, data: bytes, *, create_only: bool = False) -> str:
        final = self.path(key)
        tmp = self._tmp(final)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            if create_only:
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    raise AlreadyExists(f"{final} already exists") from None
            else:
                os.replace(tmp, final)
                tmp = None
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return etag_of(data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{self.path(key)} does not exist") from None

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        data = self.get_bytes(key)
        return data, etag_of(data)

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def compare_and_swap(self, key: str, data: bytes, expected_etag: str | None) -> str:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        lock_path = final.with_name(f".{final.name}.lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = etag_of(final.read_bytes()) if final.exists() else None
                if current != expected_etag:
                    raise Conflict(
                        f"{key} changed since it was read (expected etag {expected_etag}, found {current})"
                    )
                return self.put_bytes(key, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def list_dirs(self, prefix: str) -> list[str]:
        base = self.path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir())

    def list_keys(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if not base.is_dir():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                out.append(str(p.relative_to(self.root)))
        return sorted(out)

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass

    def download(self, key: str, local_path: str | os.PathLike) -> None:
        import shutil

        try:
            shutil.copyfile(self.path(key), local_path)
        except FileNotFoundError:
            raise NotFound(f"{self.path(key)} does not exist") from None


# ----------------------------------------------------------------------------- S3

_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "502",
    "504",
    "RequestLimitExceeded",
}


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with jitter for transient S3 errors."""

    max_attempts: int = 6
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * (2**attempt)) * (0.5 + random.random() / 2)


def _root_cause(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it wraps (boto3's transfer errors wrap the real one)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        last = getattr(cur, "last_exception", None)  # boto3 RetriesExceededError
        cur = last if isinstance(last, BaseException) else (cur.__cause__ or cur.__context__)
    return chain


def classify_s3_error(exc: BaseException) -> tuple[str, str, int] | None:
    """(kind, code, HTTP status) of an exception from an S3 call, or None if it is not one.

    kind: ``transient`` (throttling, 5xx, resets, timeouts: retry), ``refused``
    (nothing listening: retry a little, then blame the endpoint), ``credentials``,
    ``tls`` (https to a plain-HTTP endpoint), ``client`` (any other S3 error
    response: permissions, bucket, preconditions).
    """
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
        ResponseStreamingError,
        SSLError,
    )

    chain = _root_cause(exc)
    for err in chain:
        if isinstance(err, ClientError):
            body = err.response.get("Error", {})
            code = str(body.get("Code", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
            if not isinstance(status, int):
                status = 0
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return "transient", code, status
            return "client", code, status
        if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
            return "credentials", type(err).__name__, 0
        if isinstance(err, SSLError) or "SSL" in type(err).__name__:
            return "tls", type(err).__name__, 0
        if isinstance(err, (ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError, ResponseStreamingError,
                            ConnectionResetError, BrokenPipeError, TimeoutError)):
            return "transient", type(err).__name__, 0
        if isinstance(err, EndpointConnectionError):
            return "refused", type(err).__name__, 0
    from boto3.exceptions import RetriesExceededError, S3UploadFailedError

    if isinstance(exc, (S3UploadFailedError, RetriesExceededError)):
        # The wrapped error is only in the message: classify by its text.
        text = str(exc)
        if any(c in text for c in ("SlowDown", "ServiceUnavailable", "InternalError", "(503)", "(500)", "RequestTimeout")):
            return "transient", "S3UploadFailed", 0
        return "client", "S3UploadFailed", 0
    return None


class S3Objects:
    """Objects in an S3 bucket under a prefix (any S3-compatible endpoint)."""

    kind = "s3"

    def __init__(
        self,
        uri: str,
        *,
        endpoint_url: str | None = None,
        retry: RetryPolicy | None = None,
        client=None,
        multipart_threshold: int = 64 * 1024 * 1024,
        multipart_chunksize: int = 16 * 1024 * 1024,
    ):
        if not uri.startswith("s3://"):
            raise StoreError(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
        rest = uri[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StoreError(f"no bucket in {uri!r} (expected s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self.retry = retry or RetryPolicy()
        self.retries = 0
        self._client = client
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize

    @property
    def transfer(self):
        """Managed-transfer settings; s3transfer's own retries stay at one attempt
        so a failed part fails the transfer and our classifier counts the retry."""
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            num_download_attempts=1,
        )

    def __repr__(self) -> str:
        return f"S3Objects('s3://{self.bucket}/{self.prefix}', endpoint={self.endpoint_url!r})"

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=120),
            )
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def storage_options(self) -> dict[str, str]:
        """Options for polars (object_store) to read the same objects."""
        creds = self.client._request_signer._credentials
        opts: dict[str, str] = {"aws_region": self.client.meta.region_name or "us-east-1"}
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            opts["aws_access_key_id"] = frozen.access_key
            opts["aws_secret_access_key"] = frozen.secret_key
            if frozen.token:
                opts["aws_session_token"] = frozen.token
        if self.endpoint_url:
            opts["aws_endpoint_url"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                opts["aws_allow_http"] = "true"
        return opts

    def fsspec_options(self) -> dict[str, Any]:
        """Options for fsspec/s3fs (``datasets.load_dataset(storage_options=...)``)."""
        opts = self.storage_options()
        out: dict[str, Any] = {}
        if "aws_access_key_id" in opts:
            out["key"] = opts["aws_access_key_id"]
            out["secret"] = opts["aws_secret_access_key"]
        if "aws_session_token" in opts:
            out["token"] = opts["aws_session_token"]
        if self.endpoint_url:
            out["client_kwargs"] = {"endpoint_url": self.endpoint_url, "region_name": opts["aws_region"]}
        return out

    # -- error handling ------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one S3 call (a single request or a whole managed transfer) through the
        one classifier: transient faults are retried with bounded, counted backoff;
        anything else becomes a ``StoreError`` whose message says what to fix."""
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:  # classified below; anything unknown re-raises
                verdict = classify_s3_error(exc)
                if verdict is None:
                    raise
                kind, code, status = verdict
                limit = min(3, self.retry.max_attempts) if kind == "refused" else self.retry.max_attempts
                if kind not in ("transient", "refused") or attempt + 1 >= limit:
                    raise self._explain(what, kind, code, status, exc, attempt + 1) from None
            self.retries += 1
            delay = self.retry.delay(attempt)
            # INFO, not WARNING: a retry that succeeds needs no action (counted in .retries; -v shows it).
            log.info("S3 %s: transient failure (%s), retry %d in %.2fs", what, code or kind, attempt + 1, delay)
            self.retry.sleep(delay)
            attempt += 1

    def _explain(self, what: str, kind: str, code: str, status: int, exc: BaseException, attempts: int) -> StoreError:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        endpoint = self.endpoint_url or "the AWS default endpoint"
        if kind == "credentials":
            return StoreError(
                f"{what}: no AWS credentials found for {where}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE)"
            )
        if kind == "tls":
            return StoreError(
                f"{what}: TLS handshake with {endpoint} failed; if that endpoint serves plain HTTP, "
                "use http:// in AWS_ENDPOINT_URL"
            )
        if kind == "refused":
            return StoreError(
                f"{what}: cannot connect to the S3 endpoint {endpoint}; check AWS_ENDPOINT_URL and that the server is up"
            )
        if kind == "transient":
            return StoreError(
                f"{what}: S3 at {endpoint} still failing after {attempts} attempts ({code or type(exc).__name__}); "
                "check the endpoint's health and retry"
            )
        if code == "NoSuchBucket":
            return StoreError(f"{what}: bucket {self.bucket!r} does not exist (root {where}); create it or fix the root")
        if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StoreError(
                f"{what}: access denied to {where} ({code}); check the AWS credentials and the bucket policy"
            )
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound(f"{what}: not found")
        if code == "PreconditionFailed" or status == 412:
            return Conflict(f"{what}: precondition failed (the object changed or already exists)")
        if code == "ConditionalRequestConflict" or status == 409:
            return Conflict(f"{what}: conflicting concurrent write")
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StoreError(f"{what}: S3 error {code or status} at {endpoint}: {first}")

    # -- primitives ----------------------------------------------------------

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        # upload_file does multipart for big shards; the object appears atomically.
        self._call(
            f"upload {key}",
            lambda: self.client.upload_file(str(local_path), self.bucket, self._key(key), Config=self.transfer),
        )

    def put_bytes(self, key: str, data: bytes, *, create_only: bool = False) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": data}
        if create_only:
            kwargs["IfNoneMatch"] = "*"
        try:
            resp = self._call(f"put {key}", lambda: self.client.put_object(**kwargs))
        except Conflict:
            if not create_only:
                raise
            # 412: the key exists. When our own earlier attempt stored it and only
            # its reply was lost, the retry meets our bytes: that is success, not a
            # second writer. Different bytes are another writer's commit.
            try:
                existing, etag = self.get_with_etag(key)
            except NotFound:
                existing, etag = None, None
            if existing == data:
                log.info("S3 put %s: already stored by an earlier attempt of this write", key)
                return etag
            raise AlreadyExists(f"{self.uri(key)} already exists") from None
        return resp["ETag"].strip('"')

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        resp = self._call(f"get {key}", lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key)))
        return resp["Body"].read(), resp["ETag"].strip('"')

    def get_bytes(self, key: str) -> bytes:
        return self.get_with_etag(key)[0]

    def exists(self, key: str) -> bool:
        try:
            self._call(f"head {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
            return True
        except NotFound:
            return False

    def compare_and_swap(self, key: str, data: bytes, expected_etag: str | None) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": data}
        if expected_etag is None:
            kwargs["IfNoneMatch"] = "*"
        else:
            kwargs["IfMatch"] = f'"{expected_etag}"'
        resp = self._call(f"compare-and-swap {key}", lambda: self.client.put_object(**kwargs))
        return resp["ETag"].strip('"')

    def _paginate(self, prefix: str, delimiter: str | None):
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        token = None
        while True:
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"list {prefix}", lambda: self.client.list_objects_v2(**kwargs))
            yield page
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def list_dirs(self, prefix: str) -> list[str]:
        full = self._key(prefix).rstrip("/") + "/" if (prefix or self.prefix) else ""
        names = []
        for page in self._paginate(full, "/"):
            for cp in page.get("CommonPrefixes", []):
                names.append(cp["Prefix"][len(full):].rstrip("/"))
        return sorted(names)

    def list_keys(self, prefix: str) -> list[str]:
        full = self._key(prefix).rstrip("/") + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        for page in self._paginate(full, None):
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key)))

    def download(self, key: str, local_path: str | os.PathLike) -> None:
        self._call(
            f"download {key}",
            lambda: self.client.download_file(self.bucket, self._key(key), str(local_path), Config=self.transfer),
        )


Objects = LocalObjects | S3Objects


def open_objects(root: str | os.PathLike) -> Objects:
    """A root string -> its backend (``s3://…`` or a local folder)."""
    root = str(root)
    if root.startswith("s3://"):
        return S3Objects(root)
    if "://" in root:
        raise StoreError(f"unsupported store root {root!r}: use a local folder or s3://bucket/prefix")
    return LocalObjects(root)


__all__ = [
    "AlreadyExists",
    "Conflict",
    "LocalObjects",
    "NotFound",
    "Objects",
    "RetryPolicy",
    "S3Objects",
    "StoreError",
    "open_objects",
]
