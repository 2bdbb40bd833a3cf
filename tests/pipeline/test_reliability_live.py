"""Live (issue 9, item 3): a killed ingestion run ends FAILED, the store is untouched, a re-run succeeds
and the refresh sensor launches research from it, with the real `dagster-webserver` + `dagster-daemon`
and the project's `dagster_home/dagster.yaml` (copied into a temporary DAGSTER_HOME).

Two deaths: the run worker alone (its code server fails the run at once), and the whole daemon process
group with its code server and the run worker (a crash of the machine's Dagster processes): nobody is
left to notice, so the restarted daemon's run monitoring ends the orphan through its runtime limit (the
tag `dagster/max_runtime` on the held run stands in for the instance's 6 h `max_runtime_seconds`).

The code location is `reliability_location.py`: the real graph whose provider waits at a gate while a
file exists, so the run can be held mid-ingestion and its process found (it writes its pid) and killed
with SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from pipeline_helpers import open_store, write_universe
from test_live_services import BIN, RUN_EVENTS, RUNS, _submit, free_port, graphql, services, wait_for

from pipeline.defs.market_data.partitions import range_tags
from pipeline.universe import REPO_ROOT, load_universe

pytestmark = [pytest.mark.live, pytest.mark.slow]
HERE = Path(__file__).resolve().parent


def _setup(tmp_path: Path) -> tuple[dict, Path, Path]:
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)):  # create the storage once (see test_live_services)
        pass
    uni = write_universe(tmp_path / "universe.yaml")
    gate = tmp_path / "gate"
    gate.mkdir()
    (tmp_path / "requests").mkdir()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n"
        f"      relative_path: {HERE / 'reliability_location.py'}\n"
        f"      working_directory: {REPO_ROOT}\n      location_name: crypto4h\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CRYPTO4H_UNIVERSE": str(uni),
        "CRYPTO4H_DB_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "CRYPTO4H_REQUESTS_DIR": str(tmp_path / "requests"),
        "CRYPTO4H_REPORTS_DIR": str(tmp_path / "reports"),
        "CRYPTO4H_TEST_GATE": str(gate),
        "PYTHONPATH": str(REPO_ROOT),  # this checkout's pipeline, whatever the venv's editable install points to
        "PYTHONWARNINGS": "ignore",
    }
    return env, gate, workspace


def _ready(port: int) -> bool:
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
    except requests.RequestException:
        return False


def _status(client, run_id: str) -> str:
    return client.get_run_status(run_id).value


def _stored_rows(env: dict) -> int:
    store = open_store(env["CRYPTO4H_DB_URL"])
    try:
        return sum(store.candle_summary("synthetic", s)["rows"] for s in ("AAA/USDT", "BBB/USDT", "CCC/USDT"))
    finally:
        store.dispose()


def test_a_killed_ingestion_run_fails_and_a_rerun_refreshes_research(tmp_path: Path) -> None:
    from dagster_graphql import DagsterGraphQLClient

    env, gate, workspace = _setup(tmp_path)
    uni = load_universe(Path(env["CRYPTO4H_UNIVERSE"]))
    tags = range_tags(uni, date(2024, 3, 1), date(2024, 3, 14))
    port = free_port()
    with services(env, port, tmp_path, workspace=workspace):
        wait_for(lambda: _ready(port), 120, "the webserver", tmp_path)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        (gate / "hold").write_text("")
        run_id = wait_for(lambda: _submit(client, tags), 60, "the code location to accept a run", tmp_path)
        pid_file = wait_for(lambda: next(gate.glob("pid-*"), None), 90, "the run to reach the provider", tmp_path)
        worker, _parent = (int(x) for x in pid_file.read_text().split())
        assert _status(client, run_id) == "STARTED"
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        status = wait_for(lambda: (s := _status(client, run_id)) not in ("STARTED", "STARTING") and s, 90,
                          "the killed run to leave STARTED", tmp_path)  # fmt: skip
        detected_s = time.monotonic() - killed_at
        assert status == "FAILURE", status
        assert _stored_rows(env) == 0  # killed before its one write transaction: nothing stored

        (gate / "hold").unlink()
        rerun = wait_for(lambda: _submit(client, tags), 60, "the re-run to be accepted", tmp_path)
        final = wait_for(lambda: (s := _status(client, rerun)) in ("SUCCESS", "FAILURE") and s, 180,
                         "the re-run", tmp_path)  # fmt: skip
        assert final == "SUCCESS"
        assert _stored_rows(env) == 14 * 288 * 3 - _synthetic_gaps(env)
        events = graphql(port, RUN_EVENTS, {"runId": run_id})["runOrError"]["eventConnection"]["events"]
        messages = " ".join(e.get("message") or "" for e in events)
        assert "was terminated by signal 9 (SIGKILL)" in messages, messages[-2000:]

        def refreshed():
            results = graphql(port, RUNS, {"job": "refresh_research"})["runsOrError"]["results"]
            done = [r for r in results if r["status"] in ("SUCCESS", "FAILURE")]
            return done[0] if done else None

        refresh = wait_for(refreshed, 150, "the sensor-launched refresh run", tmp_path)
        assert refresh["status"] == "SUCCESS"
        assert {t["key"]: t["value"] for t in refresh["tags"]}.get("crypto4h/after_run") == rerun
    print(f"killed run marked FAILURE {detected_s:.1f}s after SIGKILL")


def _synthetic_gaps(env: dict) -> int:
    """Slots the synthetic market leaves empty on purpose (its outages), from the store after the re-run."""
    import pandas as pd

    from engine.data import make_provider

    provider = make_provider("synthetic", seed=3)
    start, end = pd.Timestamp("2024-03-01", tz="UTC"), pd.Timestamp("2024-03-15", tz="UTC")
    return sum(14 * 288 - len(provider.fetch_ohlcv(s, start, end)) for s in ("AAA/USDT", "BBB/USDT", "CCC/USDT"))


@contextmanager
def _process(name: str, cmd: list[str], env: dict, logs: Path):
    """One service in its own process group; SIGTERM (then SIGKILL) on the way out if still alive."""
    out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        out.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_run_orphaned_by_a_daemon_crash_is_failed_by_run_monitoring(tmp_path: Path) -> None:
    from dagster_graphql import DagsterGraphQLClient

    env, gate, workspace = _setup(tmp_path)
    uni = load_universe(Path(env["CRYPTO4H_UNIVERSE"]))
    tags = range_tags(uni, date(2024, 3, 1), date(2024, 3, 3))
    port = free_port()
    web = [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    daemon = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
    with _process("webserver", web, env, tmp_path):
        wait_for(lambda: _ready(port), 120, "the webserver", tmp_path)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        (gate / "hold").write_text("")
        with _process("daemon", daemon, env, tmp_path) as first:
            held = {**tags, "dagster/max_runtime": "25"}
            run_id = wait_for(lambda: _submit(client, held), 60, "the code location to accept a run", tmp_path)
            pid_file = wait_for(lambda: next(gate.glob("pid-*"), None), 90, "the run to reach the provider",
                                tmp_path)  # fmt: skip
            worker, code_server = (int(x) for x in pid_file.read_text().split())
            os.killpg(first.pid, signal.SIGKILL)  # daemon, its code server and the run worker at once
            first.wait(timeout=30)
            for pid in (worker, code_server):
                if _alive(pid):  # not in the daemon's group: kill it too, as a crash would
                    os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not _alive(worker), 30, "the run worker to die", tmp_path)
        time.sleep(3)
        assert _status(client, run_id) == "STARTED"  # nobody is left to notice: an orphan
        (gate / "hold").unlink()
        with _process("daemon2", daemon, env, tmp_path):
            restarted = time.monotonic()
            status = wait_for(lambda: (s := _status(client, run_id)) not in ("STARTED", "CANCELING") and s, 90,
                              "run monitoring to end the orphaned run", tmp_path)  # fmt: skip
            ended_s = time.monotonic() - restarted
            assert status == "FAILURE", status
            events = graphql(port, RUN_EVENTS, {"runId": run_id})["runOrError"]["eventConnection"]["events"]
            messages = " ".join(e.get("message") or "" for e in events)
            assert "maximum runtime of 25 seconds" in messages, messages[-2000:]
            assert _stored_rows(env) == 0
            rerun = wait_for(lambda: _submit(client, tags), 60, "the re-run to be accepted", tmp_path)
            final = wait_for(lambda: (s := _status(client, rerun)) in ("SUCCESS", "FAILURE") and s, 120,
                             "the re-run", tmp_path)  # fmt: skip
            assert final == "SUCCESS" and _stored_rows(env) > 0
    print(f"orphaned run marked FAILURE {ended_s:.1f}s after the daemon restarted")

