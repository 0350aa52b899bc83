"""Shared fixtures: a real S3-compatible server on loopback (moto server mode)
and one Prefect test harness for the whole test run (per xdist worker)."""

from __future__ import annotations

import os
import uuid

import pytest

# Library code never reads these deep inside; tests set a sane default so a
# stray default-root write lands in a temp dir, not the checkout.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def s3_server():
    """moto in server mode on 127.0.0.1 (boto3, polars, pyarrow and s3fs talk to it
    for real over HTTP; it honours If-None-Match / If-Match with 412)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _host, port = server.get_host_and_port()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_REGION")}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_root(s3_server):
    """A fresh bucket per test: ``s3://<bucket>/prefix``."""
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/store"


@pytest.fixture(params=["local", "s3"])
def any_root(request, tmp_path):
    """The same test on a local root and on S3."""
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_root")


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (temporary server + database) for the whole run."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
