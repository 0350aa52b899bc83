"""The temporary Prefect API server of an ad-hoc ``datagen run`` (Prefect stays inside flows/).

Process lifecycle (own session, parent-death signal, the sweep of leftovers)
is ``datagen.runtime``'s; this module only starts and stops the server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from datagen.runtime import _die_with_parent, _free_port, track_child


@contextlib.contextmanager
def prefect_server(timeout_s: float = 120.0) -> Iterator[str | None]:
    """A temporary Prefect API server for this command, unless one is configured.

    Yields its API URL (``PREFECT_API_URL`` is set for the block), or None when
    ``PREFECT_API_URL`` already points somewhere. The server is the one Prefect
    would start itself (same uvicorn command and env), but in its own session,
    with a parent-death signal, and listed for the sweep, so it never outlives us.
    """
    import prefect
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value():
        yield None
        return
    import httpx

    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    # A throwaway server sends no usage telemetry: offline its attempt fails, and its
    # session row raced the flow's first writes to the SQLite file ("database is
    # locked", a traceback in `make real`'s output). The user's own setting wins.
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
           "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "error", "--lifespan", "on"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
    track_child(proc.pid)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout_s
        with httpx.Client() as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the temporary Prefect server exited with code {proc.returncode} at start")
                try:
                    if client.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the temporary Prefect server did not answer within {timeout_s:.0f} s")
                time.sleep(0.1)
        os.environ["PREFECT_API_URL"] = url
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        _drain_api_logs()  # while the server still answers: else they fail later, on stderr
        os.environ.pop("PREFECT_API_URL", None)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _drain_api_logs(timeout_s: float = 10.0) -> None:
    """Send the flow-run logs Prefect still holds in its queue to the server before it stops.

    Prefect ships run logs to the API in batches from a background worker; stopping the
    server first left the last batch to fail at exit with "--- Error logging to API ---
    All connection attempts failed" on stderr (the end of every ``make real``)."""
    try:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=timeout_s, at_exit=False)
    except Exception as exc:  # noqa: BLE001 - best effort: the run itself is over and its result stands
        logging.getLogger(__name__).debug("could not drain Prefect's API log queue: %s", exc)
