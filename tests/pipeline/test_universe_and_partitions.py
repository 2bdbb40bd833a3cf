"""Universe file validation and the partition key helpers."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from pipeline_helpers import write_universe

from pipeline.defs.market_data.partitions import (
    build_partitions_def,
    contiguous_runs,
    group_by_symbol,
    keys_from_tags,
    parse_partition_key,
    partition_key,
    range_tags,
)
from pipeline.universe import (
    DEFAULT_UNIVERSE_PATH,
    REPO_ROOT,
    UniverseConfigError,
    key_to_symbol,
    load_universe,
    symbol_to_key,
    universe_from_dict,
)

BASE = {"exchange": "x", "provider": {"kind": "synthetic"}, "symbols": ["ETH/BTC"], "start": "2024-01-01"}


def test_default_universe_is_the_bundled_real_sample() -> None:
    from engine.data.sample import SAMPLE_DIR, sample_symbols

    uni = load_universe(DEFAULT_UNIVERSE_PATH)
    assert uni.exchange == "binance" and uni.provider_kind == "files"
    assert Path(uni.provider_options["root"]) == SAMPLE_DIR
    assert sorted(uni.symbols) == sorted(sample_symbols())
    assert uni.start == date(2018, 1, 10) and uni.is_historical
    assert uni.last_date == date(2018, 1, 30)
    # the partitions are clipped to the data: the sample starts at 04:55 and ends at 04:55 UTC
    assert uni.data_start == pd.Timestamp("2018-01-10 04:55", tz="UTC")
    assert uni.end == pd.Timestamp("2018-01-30 04:55", tz="UTC")


def test_synthetic_universe_has_twenty_live_symbols() -> None:
    uni = load_universe(REPO_ROOT / "config" / "universe.synthetic.yaml")
    assert len(uni.symbols) == 20 and uni.provider_kind == "synthetic" and not uni.is_historical


def test_env_var_selects_the_universe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_universe(tmp_path / "u.yaml")
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(path))
    assert load_universe().name == "test-small"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"provider": {"kind": "kraken-magic"}}, "unknown provider kind 'kraken-magic'"),
        ({"symbols": []}, "'symbols' must be a non-empty list"),
        ({"symbols": ["ETHBTC"]}, "exactly one '/'"),
        ({"symbols": ["ETH/BTC/X"]}, "exactly one '/'"),
        ({"symbols": ["ETH-X/BTC"]}, "'-' is reserved"),
        ({"symbols": ["eth/btc"]}, "upper-case"),
        ({"symbols": ["ETH/BTC", "ETH/BTC"]}, "duplicate symbols"),
        ({"start": "yesterday"}, "not an ISO date"),
        ({"end": "2023-01-01"}, "before start"),
        ({"end": "soon"}, "end 'soon' is not an ISO date or timestamp"),
        ({"exchange": ""}, "'exchange' is required"),
        ({"colour": "blue"}, "unknown keys ['colour']"),
        ({"checks": {"max_gap": 3}}, "'checks' accepts only"),
        ({"provider": {"kind": "files", "options": {"rooot": "/tmp"}}}, "unknown option 'rooot'"),
        ({"provider": {"kind": "files", "options": {}}}, "missing 1 required positional argument: 'root'"),
        ({"provider": {"kind": "files", "options": {"root": "/no/such/dir"}}}, "not a directory"),
        ({"provider": {"kind": "synthetic", "options": {"gap_probability": 2}}}, "gap_probability"),
        ({"checks": {"max_jump": -1}}, "checks.max_jump must be > 0 and <= 100"),
        ({"checks": {"max_jump": 0}}, "checks.max_jump must be > 0"),
        ({"checks": {"max_missing_share": 5}}, "checks.max_missing_share must be >= 0 and <= 1"),
        ({"checks": {"freshness_minutes": 0}}, "checks.freshness_minutes must be >= 5"),
        ({"checks": {"freshness_minutes": 90.5}}, "checks.freshness_minutes must be a whole number"),
        ({"checks": {"scope_days": -2}}, "checks.scope_days must be >= 1"),
        ({"checks": {"max_jump": "big"}}, "checks.max_jump must be a number"),
        ({"checks": {"max_missing_share": True}}, "checks.max_missing_share must be a number"),
        ({"checks": {"max_jump": float("nan")}}, "checks.max_jump must be a number"),
        ({"checks": {"scope_days": "2"}}, "checks.scope_days must be a whole number"),
        ({"symbols": ["A" * 60 + "/USDT"]}, "has 65 characters; the store holds at most 64"),
        ({"exchange": "x" * 65}, "'exchange' has 65 characters; the store holds at most 64"),
        ({"start": "2024-02-30"}, "start '2024-02-30' is not an ISO date"),
        ({"end": "2024-02-30"}, "end '2024-02-30' is not an ISO date or timestamp"),
        ({"provider": {"kind": "nobitex", "options": {"price_unit": "toman"}}}, "price_unit must be 'IRR'"),
        ({"provider": {"kind": "ccxt", "options": {"limit": 0}}}, "limit must be a whole number >= 1"),
    ],
)
def test_invalid_universe_fails_with_a_clear_message(change: dict, message: str) -> None:
    with pytest.raises(UniverseConfigError, match="universe config") as err:
        universe_from_dict({**BASE, **change})
    assert message in str(err.value)


def test_bad_provider_options_fail_at_code_location_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`options: {rooot: ...}` used to pass `dagster definitions validate` and fail at run time."""
    from pipeline.definitions import build_defs

    path = write_universe(tmp_path / "typo.yaml", exchange="binance",
                          provider={"kind": "files", "options": {"rooot": "{sample_dir}"}})  # fmt: skip
    with pytest.raises(UniverseConfigError) as err:
        load_universe(path)
    assert str(path) in str(err.value) and "unknown option 'rooot'" in str(err.value)
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(path))
    with pytest.raises(UniverseConfigError, match="rooot"):
        build_defs()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start: 2024-02-30", "start '2024-02-30' is not an ISO date"),
        ("start: 2024-01-01\nend: 2024-13-01", "end '2024-13-01' is not an ISO date or timestamp"),
        ("start: 2024-01-01\nchecks: {max_jump: -1}", "checks.max_jump must be > 0"),
    ],
)
def test_bad_values_in_a_file_name_the_file_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    """PyYAML used to raise a bare ValueError for 2024-02-30, naming no file."""
    path = tmp_path / "bad-date.yaml"
    path.write_text("exchange: x\nprovider: synthetic\nsymbols: [ETH/BTC]\n" + text + "\n")
    with pytest.raises(UniverseConfigError) as err:
        load_universe(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_start_may_be_the_first_candle_and_partitions_are_clipped_to_the_data() -> None:
    uni = universe_from_dict({**BASE, "start": "2018-01-10T04:55:00Z", "end": "2018-01-30T04:55:00Z"})
    assert uni.start == date(2018, 1, 10) and uni.data_start == pd.Timestamp("2018-01-10 04:55", tz="UTC")
    assert uni.partition_bounds(date(2018, 1, 10)) == (
        pd.Timestamp("2018-01-10 04:55", tz="UTC"), pd.Timestamp("2018-01-11", tz="UTC"))
    assert uni.partition_bounds(date(2018, 1, 30)) == (
        pd.Timestamp("2018-01-30", tz="UTC"), pd.Timestamp("2018-01-30 04:55", tz="UTC"))
    assert uni.partition_bounds(date(2018, 1, 15)) == (
        pd.Timestamp("2018-01-15", tz="UTC"), pd.Timestamp("2018-01-16", tz="UTC"))
    assert universe_from_dict(BASE).data_start is None
    with pytest.raises(UniverseConfigError, match="before start"):
        universe_from_dict({**BASE, "start": "2018-01-10T04:55:00Z", "end": "2018-01-10T04:00:00Z"})


def test_check_limits_at_their_bounds_are_accepted() -> None:
    checks = {"freshness_minutes": 5, "max_missing_share": 0, "max_jump": 0.01, "scope_days": 1}
    assert universe_from_dict({**BASE, "checks": checks}).checks.max_missing_share == 0.0
    assert universe_from_dict({**BASE, "checks": {"max_missing_share": 1, "max_jump": 2}}).checks.max_jump == 2.0


def test_provider_kinds_come_from_the_engine_registry() -> None:
    from engine.data import PROVIDER_KINDS

    for kind in PROVIDER_KINDS:
        if kind in ("synthetic", "nobitex"):  # buildable without options
            assert universe_from_dict({**BASE, "provider": {"kind": kind}}).provider_kind == kind


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UniverseConfigError, match="not found"):
        load_universe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("symbols: [unclosed")
    with pytest.raises(UniverseConfigError, match="invalid YAML"):
        load_universe(bad)


@pytest.mark.parametrize("symbol", ["ETH/BTC", "1000SHIB/USDT", "BTC/USDT", "A_B/C.D"])
def test_symbol_key_round_trip(symbol: str) -> None:
    key = symbol_to_key(symbol)
    assert "/" not in key and key_to_symbol(key) == symbol


def test_partition_keys_and_ranges(tmp_path: Path) -> None:
    uni = load_universe(write_universe(tmp_path / "u.yaml"))
    pdef = build_partitions_def(uni)
    assert isinstance(pdef, dg.MultiPartitionsDefinition)
    key = partition_key(date(2024, 3, 2), "BBB/USDT")
    assert str(key) == "2024-03-02|BBB-USDT"
    assert parse_partition_key(key) == (date(2024, 3, 2), "BBB/USDT")
    assert parse_partition_key("2024-03-02|BBB-USDT") == (date(2024, 3, 2), "BBB/USDT")
    keys = pdef.get_partition_keys()
    assert len(keys) == 14 * 3  # historical universe: stops at its last day
    assert max(parse_partition_key(k)[0] for k in keys) == date(2024, 3, 14)

    tags = range_tags(uni, date(2024, 3, 3), date(2024, 3, 5))
    in_range = keys_from_tags(pdef, tags)
    assert len(in_range) == 3 * 3
    assert group_by_symbol(in_range) == {s: [date(2024, 3, d) for d in (3, 4, 5)] for s in uni.symbols}
    assert keys_from_tags(pdef, {"dagster/partition": "2024-03-02|AAA-USDT"}) == [partition_key(date(2024, 3, 2), "AAA/USDT")]
    assert keys_from_tags(pdef, {}) == []


def test_live_universe_partitions_include_today(tmp_path: Path) -> None:
    today = pd.Timestamp.now(tz="UTC").date()
    uni = load_universe(write_universe(tmp_path / "u.yaml", start=str(today - timedelta(days=2)), end=None))
    dates = {parse_partition_key(k)[0] for k in build_partitions_def(uni).get_partition_keys()}
    assert today in dates and len(dates) == 3


def test_symbol_blocks_follow_the_universe_order(tmp_path: Path) -> None:
    from pipeline.defs.market_data.partitions import symbol_blocks

    uni = load_universe(write_universe(tmp_path / "u.yaml"))
    assert symbol_blocks(uni, ["CCC/USDT", "BBB/USDT"]) == [["BBB/USDT", "CCC/USDT"]]
    assert symbol_blocks(uni, ["AAA/USDT", "CCC/USDT"]) == [["AAA/USDT"], ["CCC/USDT"]]
    with pytest.raises(ValueError, match="not in universe"):
        symbol_blocks(uni, ["ZZZ/USDT"])
    tags = range_tags(uni, date(2024, 3, 2), date(2024, 3, 3), ["BBB/USDT", "CCC/USDT"])
    keys = keys_from_tags(build_partitions_def(uni), tags)
    assert group_by_symbol(keys) == {s: [date(2024, 3, 2), date(2024, 3, 3)] for s in ("BBB/USDT", "CCC/USDT")}


def test_contiguous_runs() -> None:
    d = [date(2024, 1, i) for i in (5, 1, 2, 3, 7, 8)]
    assert contiguous_runs(d) == [
        (date(2024, 1, 1), date(2024, 1, 3)),
        (date(2024, 1, 5), date(2024, 1, 5)),
        (date(2024, 1, 7), date(2024, 1, 8)),
    ]


def test_shipped_universe_files_parse() -> None:
    names = set()
    for path in (REPO_ROOT / "config").glob("universe*.yaml"):
        assert yaml.safe_load(path.read_text())["symbols"]
        names.add(load_universe(path).name)
    assert {"binance-sample", "synthetic-live", "binance-usdt", "nobitex"} <= names
