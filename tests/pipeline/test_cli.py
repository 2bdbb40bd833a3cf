"""The command-line entry points: `python -m pipeline.backfill`, `python -m pipeline.demo`, and the code
location loaded the way Dagster's CLI and run workers load it (multiprocess executor, step subprocesses)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from pipeline_helpers import SMALL_SYMBOLS, open_store, write_universe

from pipeline.universe import REPO_ROOT

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [r.dagster_run for r in instance.get_run_records()]


def _rows(db_url: str, symbols=SMALL_SYMBOLS) -> dict[str, int]:
    store = open_store(db_url)
    try:
        return {s: store.candle_summary("synthetic", s)["rows"] for s in symbols}
    finally:
        store.dispose()


# --- backfill -----------------------------------------------------------------------------------------


def test_backfill_cli_makes_one_range_run(env, capsys) -> None:
    from pipeline.backfill import main

    assert main(["--start", "2024-03-01", "--end", "2024-03-03", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2024-03-01..2024-03-03 x 3 symbols = 9 partitions of 'test-small' in 1 run " in out
    assert "range 2024-03-01|AAA-USDT .. 2024-03-03|CCC-USDT" in out
    [run] = _runs(env["home"])
    assert run.job_name == "ingest_candles" and run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags[RANGE_START] == "2024-03-01|AAA-USDT" and run.tags[RANGE_END] == "2024-03-03|CCC-USDT"
    assert f"run {run.run_id}: success" in out
    assert all(820 <= n <= 864 for n in _rows(env["db_url"]).values())  # 3 days each


def test_backfill_cli_logs_progress_per_symbol(env, capfd) -> None:
    from pipeline.backfill import main

    assert main(["--start", "2024-03-02", "--end", "2024-03-02", "--symbols", "BBB/USDT,CCC/USDT"]) == 0
    captured = capfd.readouterr()
    log = captured.out + captured.err
    assert "ingesting 2 partitions (2 symbols)" in log
    assert "[1/2] BBB/USDT: fetched" in log and "[2/2] CCC/USDT: fetched" in log
    [run] = _runs(env["home"])
    assert run.tags[RANGE_START] == "2024-03-02|BBB-USDT" and run.tags[RANGE_END] == "2024-03-02|CCC-USDT"
    assert _rows(env["db_url"])["AAA/USDT"] == 0


def test_backfill_cli_splits_symbols_that_are_not_adjacent(env, capsys) -> None:
    from pipeline.backfill import main

    assert main(["--start", "2024-03-01", "--end", "2024-03-01", "--symbols", "AAA/USDT", "CCC/USDT",
                 "--quiet"]) == 0  # fmt: skip
    assert "in 2 runs" in capsys.readouterr().out
    runs = _runs(env["home"])
    assert sorted(r.tags[RANGE_START] for r in runs) == ["2024-03-01|AAA-USDT", "2024-03-01|CCC-USDT"]
    rows = _rows(env["db_url"])
    assert rows["BBB/USDT"] == 0 and rows["AAA/USDT"] > 0 and rows["CCC/USDT"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2024-03-05", "--end", "2024-03-04"], "is before --start"),
        (["--start", "2024-02-01", "--end", "2024-03-04"], "outside the partitions"),
        (["--start", "2024-03-01", "--end", "2024-03-01", "--symbols", "ZZZ/USDT"], "not in universe"),
    ],
)
def test_backfill_cli_rejects_bad_arguments(env, capsys, args, message) -> None:
    from pipeline.backfill import main

    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not _runs(env["home"])


def test_backfill_cli_exit_code_and_error_on_refused_data(env, capsys, monkeypatch) -> None:
    from pipeline.backfill import main

    bad = write_universe(env["universe"].parent / "strict.yaml", checks={"max_jump": 0.001})
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(bad))
    assert main(["--start", "2024-03-01", "--end", "2024-03-01", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "error: candles: 3 quality problems" in err and "Failure:" not in err
    assert "close-to-close jumps above 0.1%" in err and "nothing was written" in err


def test_relative_dagster_home_is_made_absolute(tmp_path, monkeypatch) -> None:
    from pipeline.backfill import resolve_dagster_home

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", "rel_home")
    home = resolve_dagster_home()
    assert home == tmp_path / "rel_home" and home.is_dir() and os.environ["DAGSTER_HOME"] == str(home)


@pytest.mark.slow
def test_backfill_cli_queue_submits_one_queued_run(env, capsys) -> None:
    """`--queue` goes through `dagster job launch` (the workspace) to the run queue; the daemon is off
    here, so the run stays QUEUED with the range tags."""
    from pipeline.backfill import main

    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", env["home"] / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(env["home"])):
        pass  # create the storage once (see docs/pipeline.md)
    assert main(["--start", "2024-03-01", "--end", "2024-03-02", "--queue"]) == 0
    [run] = _runs(env["home"])
    assert run.status == dg.DagsterRunStatus.QUEUED and run.job_name == "ingest_candles"
    assert run.tags[RANGE_START] == "2024-03-01|AAA-USDT" and run.tags[RANGE_END] == "2024-03-02|CCC-USDT"
    assert run.tags["crypto4h/kind"] == "backfill"  # the production run queue limits backfills apart


# --- demo ---------------------------------------------------------------------------------------------


def test_demo_reports_a_bad_universe_in_one_line(env, capsys, tmp_path) -> None:
    from pipeline.demo import main

    bad = write_universe(tmp_path / "bad.yaml", provider={"kind": "files", "options": {"rooot": "/x"}})
    assert main(["--universe", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: universe config") and "rooot" in err and "\n" not in err


def test_demo_prints_the_failing_runs_error(env, capsys, monkeypatch) -> None:
    from pipeline.demo import main

    strict = write_universe(env["universe"].parent / "strict.yaml", checks={"max_missing_share": 0.0001})
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(strict))
    assert main(["--quiet"]) == 1
    err = capsys.readouterr().err
    assert "ingestion failed (run " in err and "5m slots missing" in err and "nothing was written" in err


def test_demo_quiet_prints_only_the_summary(env, capsys) -> None:
    from pipeline.demo import main

    assert main(["--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith("Walk-forward backtests (test-small")
    assert "macd_rsi_confluence" in out and "momentum_rank" in out
    # the verdict's numbers: mean window return with its interval, p vs random picks, benchmark, break-even fee
    for column in ("mean_window_return %", "95% interval", "null_p_value", "benchmark_mean_window_return %",
                   "break_even_fee_bps"):
        assert column in out, column
    assert "decisions 2024-03-" in out and "HTML reports" in out and ".html" in out
    for noise in ("store:", "[1/2]", "make ui", "INFO"):
        assert noise not in out


# --- a store that cannot be opened -------------------------------------------------------------------

UNREACHABLE_DB = "postgresql+psycopg2://nobody:secret@127.0.0.1:1/nowhere"  # port 1: connection refused


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("pipeline.backfill", ["--start", "2024-03-01", "--end", "2024-03-01", "--quiet"]),
        ("pipeline.demo", ["--quiet"]),
        ("pipeline.store.migrate", ["upgrade"]),
    ],
)
def test_unreachable_store_is_reported_in_one_line(env, capsys, monkeypatch, module, argv) -> None:
    import importlib

    monkeypatch.setenv("CRYPTO4H_DB_URL", UNREACHABLE_DB)
    main = importlib.import_module(module).main
    try:
        code = main(argv)
    except SystemExit as exc:  # the store CLI exits
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot ") and "nobody:***@127.0.0.1:1/nowhere" in err
    assert "Connection refused" in err and "secret" not in err and "\n" not in err
    assert not _runs(env["home"])


# --- the code location as Dagster's own processes load it ---------------------------------------------


@pytest.mark.slow
def test_multiprocess_step_subprocesses_import_the_engine(tmp_path) -> None:
    """`dagster asset materialize` runs the implicit asset job with the multiprocess executor: each step
    re-imports the code location in a subprocess. Run from another directory with the checkout given as
    the working directory and no PYTHONPATH, as a run worker does without an installed project."""
    home = tmp_path / "home"
    home.mkdir()
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"DAGSTER_HOME": str(home), "CRYPTO4H_DB_URL": db_url, "PYTHONWARNINGS": "ignore",
                "CRYPTO4H_UNIVERSE": str(write_universe(tmp_path / "u.yaml"))})  # fmt: skip
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "pipeline.definitions", "-d", str(REPO_ROOT),
         "--select", "candles", "--partition", "2024-03-02|BBB-USDT"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Launching subprocess for "candles"' in log and "No module named" not in log
    assert 280 <= _rows(db_url, ["BBB/USDT"])["BBB/USDT"] <= 288


@pytest.mark.slow
def test_dagster_asset_materialize_partition_range_is_one_run(tmp_path) -> None:
    """The documented one-run backfill with Dagster's own CLI: a rectangle of 2 days x 3 symbols is ONE run;
    corners in the wrong symbol order select no partition and fail with a message that says so."""
    home = tmp_path / "home"
    home.mkdir()
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "DAGSTER_HOME": str(home), "CRYPTO4H_DB_URL": db_url, "PYTHONWARNINGS": "ignore",
           "CRYPTO4H_UNIVERSE": str(write_universe(tmp_path / "u.yaml"))}  # fmt: skip
    dagster = Path(sys.executable).with_name("dagster")

    def materialize(rng: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(dagster), "asset", "materialize", "-m", "pipeline.definitions", "--select", "candles",
             "--partition-range", rng],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    ok = materialize("2024-03-01|AAA-USDT...2024-03-02|CCC-USDT")
    assert ok.returncode == 0, (ok.stdout + ok.stderr)[-4000:]
    assert len(_runs(home)) == 1
    assert all(560 <= n <= 576 for n in _rows(db_url, ["AAA/USDT", "BBB/USDT", "CCC/USDT"]).values())
    wrong = materialize("2024-03-01|CCC-USDT...2024-03-02|AAA-USDT")
    log = wrong.stdout + wrong.stderr
    assert wrong.returncode != 0
    assert "holds no partition" in log and "AAA-USDT', 'BBB-USDT', 'CCC-USDT'" in log
