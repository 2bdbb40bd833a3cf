"""Live: the real `dagster-webserver` and `dagster-daemon` run paper ticks on a simulated clock.

Each tick lands the candles an hourly ingestion would hold, then launches `paper_trading` through the
GraphQL API with `as_of` (the tick's clock) in its run config and the schedule's tick tag; the daemon's
run queue executes it. The book must show every decision recorded once and the closed windows settled,
and the parity check must pass in the daemon-run process. The `paper_tick` schedule itself is checked to
be loaded and running (on this historical universe its ticks skip: a live clock has nothing to decide).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import requests
from paper_helpers import PaperSim, ts
from test_live_services import RUN_EVENTS, free_port, graphql, services, wait_for

from pipeline.defs.paper.config import run_config
from pipeline.universe import REPO_ROOT

pytestmark = [pytest.mark.live, pytest.mark.slow]

SCHEDULES = """
query Schedules($sel: RepositorySelector!) {
  schedulesOrError(repositorySelector: $sel) {
    __typename
    ... on Schedules { results { name cronSchedule pipelineName scheduleState { status } } }
  }
}
"""
TICKS = ("2024-03-05 00:15", "2024-03-05 02:15", "2024-03-05 04:15", "2024-03-05 06:15")


def _submit(client, config: dict, tags: dict) -> str | None:
    from dagster_graphql import DagsterGraphQLClientError

    try:
        return client.submit_job_execution("paper_trading", run_config=config, tags=tags)
    except DagsterGraphQLClientError:
        return None  # code location still loading


def test_daemon_runs_simulated_paper_ticks_that_record_and_settle(tmp_path: Path) -> None:
    import dagster as dg
    from dagster_graphql import DagsterGraphQLClient

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    sim = PaperSim(tmp_path, db_url)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CRYPTO4H_UNIVERSE": str(sim.universe_path),
        "CRYPTO4H_DB_URL": db_url,
        "CRYPTO4H_REQUESTS_DIR": str(tmp_path / "requests"),
        "CRYPTO4H_REPORTS_DIR": str(tmp_path / "reports"),
        "PYTHONWARNINGS": "ignore",
    }
    (tmp_path / "requests").mkdir()
    with dg.DagsterInstance.from_config(str(home)):
        pass  # create the instance storage once, before two processes race to
    port = free_port()
    with services(env, port, tmp_path):

        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(ready, 120, "the webserver", tmp_path)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        schedules = graphql(port, SCHEDULES, {"sel": {"repositoryLocationName": "crypto4h",
                                                      "repositoryName": "__repository__"}})  # fmt: skip
        found = {s["name"]: s for s in schedules["schedulesOrError"]["results"]}
        assert found["paper_tick"]["cronSchedule"] == "15 * * * *"
        assert found["paper_tick"]["pipelineName"] == "paper_trading"
        assert found["paper_tick"]["scheduleState"]["status"] == "RUNNING"

        for tick in TICKS:
            clock = ts(tick)
            sim.land(clock - pd.Timedelta(minutes=5))
            config = run_config(**sim.settings, as_of=clock.isoformat())
            tags = {"crypto4h/tick": f"{clock:%Y-%m-%dT%H:%M}Z"}
            run_id = wait_for(lambda c=config, t=tags: _submit(client, c, t), 60, "the code location", tmp_path)
            status = wait_for(
                lambda r=run_id: (s := client.get_run_status(r).value) in ("SUCCESS", "FAILURE", "CANCELED") and s,
                180, f"the paper tick at {tick}", tmp_path,
            )  # fmt: skip
            run = graphql(port, RUN_EVENTS, {"runId": run_id})["runOrError"]
            events = run["eventConnection"]["events"]
            messages = "\n".join(e.get("message") or "" for e in events)
            assert status == "SUCCESS", messages[-3000:]
            evaluations = {e["evaluation"]["checkName"]: e["evaluation"]["success"]
                           for e in events if e["__typename"] == "AssetCheckEvaluationEvent"}  # fmt: skip
            assert evaluations == {"paper_parity": True, "paper_candle_revisions": True}, messages[-3000:]
            materialized = {"/".join(e["assetKey"]["path"]) for e in events if e["__typename"] == "MaterializationEvent"}
            assert materialized == {"paper_trades", "paper_performance"}

    decisions = sim.decisions()
    assert len(decisions) == 2 * len(TICKS) and not decisions.duplicated(["strategy", "decision_time"]).any()
    assert set(decisions["mode"]) == {"live"} and decisions["run_id"].notna().all()
    trades = sim.trades()
    done = trades.loc[trades["status"] != "open"]
    assert set(done["decision_time"]) == {ts("2024-03-05 00:00"), ts("2024-03-05 02:00")}
    assert set(done["settled_at"]) == {ts("2024-03-05 04:15"), ts("2024-03-05 06:15")}
    assert (trades.loc[trades["status"] == "open", "decision_time"] >= ts("2024-03-05 04:00")).all()
    assert list((tmp_path / "reports" / "paper").glob("*-equity.png"))
