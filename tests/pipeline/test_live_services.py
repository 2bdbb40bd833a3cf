"""Live: the real `dagster-webserver` and `dagster-daemon` on a free loopback port with a temporary
DAGSTER_HOME. A materialisation is launched through the GraphQL API, its event log is read back, and the
daemon's sensor launches the research refresh on its own. Everything is stopped in `finally`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
import requests
from pipeline_helpers import write_universe

from pipeline.defs.market_data.partitions import range_tags
from pipeline.universe import REPO_ROOT, load_universe

pytestmark = [pytest.mark.live, pytest.mark.slow]
BIN = Path(sys.executable).parent

RUN_EVENTS = """
query RunEvents($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      jobName
      eventConnection { events {
        __typename
        ... on MessageEvent { message level }
        ... on MaterializationEvent { assetKey { path } partition }
        ... on AssetCheckEvaluationEvent { evaluation { checkName success } }
      } }
    }
  }
}
"""
RUNS = """
query Runs($job: String!) {
  runsOrError(filter: {pipelineName: $job}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def services(env: dict, port: int, logs: Path, workspace: Path | str = "workspace.yaml"):
    """Start webserver + daemon in their own process groups; always terminate both."""
    procs: list[subprocess.Popen] = []
    try:
        for name, cmd in {
            "webserver": [
                str(BIN / "dagster-webserver"),
                "-w",
                str(workspace),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        }.items():
            out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process below
            procs.append(subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True))  # fmt: skip
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in procs:
            try:
                p.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
            if p.stdout:
                p.stdout.close()


def graphql(port: int, query: str, variables: dict) -> dict:
    resp = requests.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    resp.raise_for_status()
    body = resp.json()
    assert "errors" not in body, body
    return body["data"]


def wait_for(predicate, timeout: float, what: str, logs: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    dump = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs.glob("*.log"))
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{dump}")


def test_webserver_and_daemon_run_a_materialisation_end_to_end(tmp_path: Path) -> None:
    from dagster_graphql import DagsterGraphQLClient

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    uni_path = write_universe(tmp_path / "universe.yaml")
    (tmp_path / "requests").mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CRYPTO4H_UNIVERSE": str(uni_path),
        "CRYPTO4H_DB_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "CRYPTO4H_REQUESTS_DIR": str(tmp_path / "requests"),
        "PYTHONWARNINGS": "ignore",
    }
    # create the instance's SQLite storage once: two processes initialising a fresh DAGSTER_HOME at the
    # same moment can both stamp the schema version ("alembic_version has more than one head")
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)):
        pass
    port = free_port()
    with services(env, port, tmp_path):

        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(ready, 120, "the webserver", tmp_path)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        tags = range_tags(load_universe(uni_path), date(2024, 3, 1), date(2024, 3, 14))
        run_id = wait_for(lambda: _submit(client, tags), 60, "the code location to accept a run", tmp_path)

        status = wait_for(
            lambda: (s := client.get_run_status(run_id).value) in ("SUCCESS", "FAILURE", "CANCELED") and s,
            180, "the ingestion run", tmp_path,
        )  # fmt: skip
        run = graphql(port, RUN_EVENTS, {"runId": run_id})["runOrError"]
        events = run["eventConnection"]["events"]
        messages = "\n".join(e.get("message") or "" for e in events)
        assert status == "SUCCESS", messages[-3000:]
        parts = {e["partition"] for e in events if e["__typename"] == "MaterializationEvent"}
        assert len(parts) == 14 * 3 and "2024-03-07|BBB-USDT" in parts
        checks = {
            e["evaluation"]["checkName"] for e in events if e["__typename"] == "AssetCheckEvaluationEvent"
        }
        assert checks == {"schema", "duplicates", "gaps", "ohlc_sanity", "freshness"}
        assert "ingesting 42 partitions (3 symbols)" in messages

        # the daemon's sensor notices the new candles and refreshes the research assets by itself
        def refreshed():
            results = graphql(port, RUNS, {"job": "refresh_research"})["runsOrError"]["results"]
            done = [r for r in results if r["status"] in ("SUCCESS", "FAILURE")]
            return done[0] if done else None

        refresh = wait_for(refreshed, 150, "the sensor-launched refresh run", tmp_path)
        assert refresh["status"] == "SUCCESS"
        tag = {t["key"]: t["value"] for t in refresh["tags"]}
        assert (
            tag.get("crypto4h/after_run") == run_id
            and tag.get("dagster/sensor_name") == "refresh_after_candles"
        )


def _submit(client, tags: dict) -> str | None:
    from dagster_graphql import DagsterGraphQLClientError

    try:
        return client.submit_job_execution("ingest_candles", tags=tags)
    except DagsterGraphQLClientError:
        return None  # code location still loading
