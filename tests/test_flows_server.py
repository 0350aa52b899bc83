"""The temporary Prefect server of an ad-hoc run (``flows.server.prefect_server``) ends quietly.

Its last flow run's logs used to be shipped after the server had stopped, so every
``make real`` ended on "--- Error logging to API --- All connection attempts failed";
and its usage telemetry raced the first flow run for the SQLite file ("database is
locked", a traceback). A fresh process runs one real flow inside the server and exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, pathlib, sys
    from flows.common import ad_hoc_run_settings
    from flows.ingest import IngestParams, ingest_flow
    from flows.server import prefect_server

    d = pathlib.Path(sys.argv[1])
    f = d / "problems.jsonl"
    f.write_text("".join(json.dumps({"prompt": f"What is {i}+1?", "answer": str(i + 1)}) + "\\n" for i in range(5)))
    with ad_hoc_run_settings(), prefect_server():
        print(ingest_flow(IngestParams(root=str(d / "store"), name="problems", file=str(f))))
""")


def test_a_flow_run_in_the_temporary_server_ends_without_log_shipping_errors(tmp_path):
    # as a user's shell has it: no API configured, Prefect's default INFO logging (the
    # suite's conftest quiets Prefect to WARNING, which leaves no logs to ship)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_LOGGING_LEVEL"] = "INFO"
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith("problems@")
    assert "Error logging to API" not in out.stderr, out.stderr[-2000:]
    assert "database is locked" not in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
