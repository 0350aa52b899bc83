"""S3 faults, injected for real: a fault proxy on loopback in front of moto's
S3 server (server mode). boto3 talks HTTP to the proxy, the proxy forwards to
moto and, when a rule matches a request, loses the reply, cuts the
connection or answers 503 SlowDown instead. Each case ends committed exactly
once with ``latest`` right, or failed with one line that says what to fix,
and never half-visible (issue 12)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pytest

from datagen.store import Store
from datagen.store.objects import RetryPolicy, S3Objects, StoreError

REPO = Path(__file__).resolve().parents[1]
DATAGEN = [str(Path(sys.executable).parent / "datagen")]


class FaultProxy:
    """An HTTP proxy to ``upstream`` with fault rules.

    ``add(method, path_substring, action, times)``: the next ``times`` matching
    requests get ``action``: ``"lose_reply"`` (forwarded, answer dropped: the
    write happened, the client sees a dead connection), ``"cut"`` (not
    forwarded, connection closed) or ``"slowdown"`` (503 SlowDown, not
    forwarded). ``seen`` logs (method, path, action) of every request.
    """

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.rules: list[dict] = []
        self.seen: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                body = self._body()
                action = proxy._action(self.command, self.path)
                if action == "cut":
                    self.close_connection = True
                    return
                if action == "slowdown":
                    msg = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                           b"<Message>Please reduce your request rate.</Message></Error>")
                    self.send_response(503, "Slow Down")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("transfer-encoding", "expect", "connection", "content-length")}
                headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if action == "lose_reply":
                    self.close_connection = True
                    return
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)) if self.command != "HEAD"
                                 else resp.getheader("Content-Length", "0"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, method: str, path_part: str, action: str, times: int = 1) -> None:
        with self.lock:
            self.rules.append({"method": method, "path": path_part, "action": action, "left": times})

    def _action(self, method: str, path: str) -> str:
        with self.lock:
            for rule in self.rules:
                if rule["left"] > 0 and rule["method"] in (method, "*") and rule["path"] in path:
                    rule["left"] -= 1
                    self.seen.append((method, path, rule["action"]))
                    return rule["action"]
            self.seen.append((method, path, "pass"))
            return "pass"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(s3_server):
    p = FaultProxy(s3_server)
    yield p
    p.close()


def _store(root: str, proxy: FaultProxy, **kw) -> Store:
    fast = RetryPolicy(max_attempts=kw.pop("max_attempts", 6), base_delay_s=0.01, max_delay_s=0.05)
    return Store(root, objects=S3Objects(root, endpoint_url=proxy.url, retry=fast, **kw))


def _rows(n: int, tag: str = "") -> list[dict]:
    return [{"problem_id": f"p{tag}{i}", "sample_id": f"p{tag}{i}", "source": "t", "domain": "math",
             "language": "en", "prompt": f"What is {i} + {i}? {tag}", "answer": str(2 * i)} for i in range(n)]


def _manifests(store: Store, dataset: str) -> list[str]:
    return [k for k in store.objects.list_keys(dataset) if k.endswith("/manifest.json")]


def test_lost_reply_on_manifest_put_commits_exactly_once(s3_root, proxy):
    store = _store(s3_root, proxy)
    proxy.add("PUT", "/manifest.json", "lose_reply")
    w = store.writer("probs", stage="import")
    w.write(_rows(5))
    m = w.commit()
    # The PUT reached the store; its reply was lost; the retry met 412 and found our bytes.
    assert [a for _, p, a in proxy.seen if p.endswith("/manifest.json") and a != "pass"] == ["lose_reply"]
    assert store.objects.retries >= 1
    assert len(_manifests(store, "probs")) == 1
    assert store.get_ref("probs", "latest")[0] == m.id
    assert store.resolve("probs").rows == 5


def test_a_different_writer_of_the_same_version_is_still_refused(s3_root, proxy):
    from datagen.store import AlreadyExists

    store = _store(s3_root, proxy)
    v = "20260101T000000Z-aaaaaaaa"
    w1 = store.writer("probs", stage="import", version=v)
    w1.write(_rows(3))
    w1.commit()
    w2 = store.writer("probs", stage="import", version=v)
    with pytest.raises(AlreadyExists):
        w2.commit()


def test_cut_right_after_the_commit_is_retried_and_latest_moves(s3_root, proxy):
    store = _store(s3_root, proxy)
    w = store.writer("probs", stage="import")
    w.write(_rows(4))
    # The card PUT and the first ref reads/writes after the manifest die on the wire.
    proxy.add("PUT", "/README.md", "cut", times=2)
    proxy.add("*", "/_refs/latest.json", "cut", times=2)
    m = w.commit()
    assert sum(1 for _, _, a in proxy.seen if a == "cut") == 4
    assert store.get_ref("probs", "latest")[0] == m.id
    assert len(_manifests(store, "probs")) == 1


def test_cut_that_outlasts_the_retries_fails_in_one_line_and_nothing_is_half_visible(s3_root, proxy):
    store = _store(s3_root, proxy, max_attempts=3)
    w = store.writer("probs", stage="import", run_key="k1")
    w.write(_rows(4))
    proxy.add("*", "/_refs/latest.json", "cut", times=10**6)
    with pytest.raises(StoreError) as err:
        w.commit()
    assert str(err.value) == (f"get probs/_refs/latest.json: S3 at {proxy.url} still failing after 3 attempts "
                              "(ConnectionClosedError); check the endpoint's health and retry")
    proxy.rules.clear()
    # The version is committed; readers of NAME see it although `latest` never moved.
    assert store.get_ref("probs", "latest") == (None, None)
    assert store.resolve("probs").id == w.version
    assert [v.id for v in store.versions("probs")] == [w.version]
    # The rerun (same run key) finds it committed and finishes the ref move.
    again = store.writer("probs", stage="import", run_key="k1")
    assert again.committed is not None and again.version == w.version
    assert store.get_ref("probs", "latest")[0] == w.version
    assert len(_manifests(store, "probs")) == 1


def test_503s_on_a_multipart_upload_are_retried_and_counted(s3_root, proxy):
    # 5 MiB is S3's smallest part: an ~11 MiB shard goes up in three parts.
    store = _store(s3_root, proxy, multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    w = store.writer("blobs", stage="import")
    rng = os.urandom(11 * 1024 * 1024)
    table = pa.table({"blob": [rng[i:i + 1024 * 1024] for i in range(0, len(rng), 1024 * 1024)]})
    proxy.add("PUT", "partNumber=2", "slowdown", times=2)
    w.write_shard("part-00000", table)
    m = w.commit()
    assert sum(1 for _, _, a in proxy.seen if a == "slowdown") == 2
    assert any("uploads" in p for _, p, _ in proxy.seen), "the shard did not go up as a multipart upload"
    assert store.objects.retries >= 2
    assert store.get_ref("blobs", "latest")[0] == m.id
    back = store.read_shard(m.shards[0].path)
    assert b"".join(back.column("blob").to_pylist()) == rng


def test_503s_on_a_multipart_download_are_retried(s3_root, proxy, tmp_path):
    objects = _store(s3_root, proxy, multipart_threshold=5 * 1024 * 1024,
                     multipart_chunksize=5 * 1024 * 1024).objects
    data = os.urandom(6 * 1024 * 1024)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    objects.put_file("x/blob.bin", src)
    proxy.add("GET", "/x/blob.bin", "slowdown", times=2)
    objects.download("x/blob.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data
    # The two ranged part GETs run in parallel: both 503s may fail one attempt.
    assert sum(1 for _, _, a in proxy.seen if a == "slowdown") == 2
    assert objects.retries >= 1


def test_endless_slowdown_fails_in_one_line(s3_root, proxy, tmp_path):
    objects = _store(s3_root, proxy, max_attempts=3).objects
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 100)
    proxy.add("PUT", "/a.bin", "slowdown", times=10**6)
    with pytest.raises(StoreError) as err:
        objects.put_file("a.bin", src)
    assert str(err.value) == (
        f"upload a.bin: S3 at {proxy.url} still failing after 3 attempts (SlowDown); "
        "check the endpoint's health and retry"
    )


# ----------------------------------------------------------------------------- the CLI, one line each


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(DATAGEN + args, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true",
               AWS_DEFAULT_REGION="us-east-1", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def test_no_credentials_is_one_line(s3_root, s3_server, tmp_path):
    r = _cli(["datasets", "ls", "--root", s3_root], _env(tmp_path, AWS_ENDPOINT_URL=s3_server), tmp_path)
    bucket = s3_root.split("/")[2]
    assert r.returncode == 2
    assert r.stderr == (
        f"datagen datasets: error: list store/: no AWS credentials found for s3://{bucket}/store; "
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)\n"
    )


def test_https_to_a_plain_http_endpoint_is_one_line(s3_root, s3_server, tmp_path):
    https = s3_server.replace("http://", "https://")
    r = _cli(["datasets", "ls", "--root", s3_root],
             _env(tmp_path, AWS_ENDPOINT_URL=https, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"),
             tmp_path)
    assert r.returncode == 2
    assert r.stderr == (
        f"datagen datasets: error: list store/: TLS handshake with {https} failed; if that endpoint serves "
        "plain HTTP, use http:// in AWS_ENDPOINT_URL\n"
    )


def test_missing_bucket_is_one_line(s3_server, tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": "1+1?", "answer": "2"}) + "\n")
    env = _env(tmp_path, AWS_ENDPOINT_URL=s3_server, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    r = _cli(["datasets", "import", str(src), "--name", "p", "--root", "s3://no-such-bucket-x/s"], env, tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "bucket 'no-such-bucket-x' does not exist (root s3://no-such-bucket-x/s); create it or fix the root" \
        in r.stderr


def test_export_and_import_take_s3_file_paths(s3_root, s3_server, tmp_path):
    env = _env(tmp_path, AWS_ENDPOINT_URL=s3_server, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"{i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(7)))
    local_root = str(tmp_path / "store")
    assert _cli(["datasets", "import", str(src), "--name", "p", "--root", local_root], env, tmp_path).returncode == 0
    bucket = s3_root.split("/")[2]
    for ext in ("jsonl", "parquet"):
        r = _cli(["datasets", "export", "p", "--to", f"s3://{bucket}/out/x.{ext}", "--root", local_root], env,
                 tmp_path)
        assert r.returncode == 0, r.stderr
        assert not (tmp_path / "s3:").exists()
        r = _cli(["datasets", "import", f"s3://{bucket}/out/x.{ext}", "--name", f"back_{ext}", "--root", s3_root,
                  "--json"], env, tmp_path)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["rows"] == 7


def test_run_on_a_missing_bucket_is_one_line_before_any_stage(s3_server, tmp_path):
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text("name: problems\nsynthetic: {kind: arithmetic, n: 4, seed: 0}\n")
    env = _env(tmp_path, AWS_ENDPOINT_URL=s3_server, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env.pop("PREFECT_API_URL", None)
    r = _cli(["run", "ingest", "--config", str(cfg), "--root", "s3://no-such-bucket-y/x"], env, tmp_path)
    assert r.returncode == 2
    assert r.stderr == ("datagen run: error: list x/: bucket 'no-such-bucket-y' does not exist "
                        "(root s3://no-such-bucket-y/x); create it or fix the root\n")


def test_import_of_a_missing_s3_file_is_one_line(s3_root, s3_server, tmp_path):
    env = _env(tmp_path, AWS_ENDPOINT_URL=s3_server, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    bucket = s3_root.split("/")[2]
    r = _cli(["datasets", "import", f"s3://{bucket}/nope.jsonl", "--name", "p", "--root", str(tmp_path / "s")],
             env, tmp_path)
    assert r.returncode == 2
    assert r.stderr == f"datagen datasets: error: s3://{bucket}/nope.jsonl: no such object; check the bucket and path\n"


def test_nothing_listening_at_the_endpoint_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    env = _env(tmp_path, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    r = _cli(["datasets", "ls", "--root", "s3://b/x"], env, tmp_path)
    assert r.returncode == 2
    assert r.stderr == (f"datagen datasets: error: list x/: cannot connect to the S3 endpoint {endpoint}; "
                        "check AWS_ENDPOINT_URL and that the server is up\n")
