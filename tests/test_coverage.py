"""The coverage report: missing 5m ranges of a frame, confirmed vs unexplained holes, per-day clipping,
and providers that return less than the range holds (files, synthetic, a provider with no report).

T0 = 2024-01-01 00:00 UTC = 1704067200000 ms; 5 min = 300000 ms.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from engine.data import FilesProvider, SyntheticProvider
from engine.data.base import COVERAGE_ATTR, Coverage, MarketDataProvider, TimeRange, missing_ranges
from engine.data.coverage import build_coverage
from engine.data.files import DATA_DIRS_ENV

T0 = 1704067200000
STEP = 300_000
UTC = "UTC"
FAR_FUTURE = pd.Timestamp("2030-01-01", tz=UTC)


def ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz=UTC)


def frame(slots) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": [ts(T0 + i * STEP) for i in slots],
            **dict.fromkeys(["open", "high", "low", "close"], 1.0),
            "volume": 0.0,
        }  # fmt: skip
    )


def spans(ranges):
    return [(r.start, r.end) for r in ranges]


def test_missing_ranges_cover_head_gaps_and_tail_up_to_the_last_closed_slot():
    df = frame([2, 3, 7])
    now = ts(T0 + 10 * STEP + 60_000)  # 00:51: the 00:50 slot is still open
    got = missing_ranges(df, ts(T0), ts(T0 + 288 * STEP), now=now)
    assert spans(got) == [(ts(T0), ts(T0 + 2 * STEP)), (ts(T0 + 4 * STEP), ts(T0 + 7 * STEP)),
                          (ts(T0 + 8 * STEP), ts(T0 + 10 * STEP))]  # fmt: skip
    assert [r.slots for r in got] == [2, 3, 2]
    assert missing_ranges(frame(range(10)), ts(T0), ts(T0 + 10 * STEP), now=FAR_FUTURE) == []
    assert spans(missing_ranges(frame([]), ts(T0 + 1), ts(T0 + 3 * STEP), now=FAR_FUTURE)) == [
        (ts(T0 + STEP), ts(T0 + 3 * STEP))  # start is rounded up to the grid
    ]
    assert missing_ranges([T0, T0 + STEP], ts(T0), ts(T0 + 2 * STEP), now=FAR_FUTURE) == []


def test_holes_are_split_between_confirmed_and_missing():
    cov = build_coverage(
        frame([0, 1, 5, 9]), symbol="ETH/BTC", source="test", start_ms=T0, end_ms=T0 + 12 * STEP,
        now_ms=T0 + 100 * STEP, confirmed=[(T0 + 2 * STEP, T0 + 4 * STEP, "listed")],
        suspects=[(T0 + 6 * STEP, T0 + 12 * STEP, "empty page")], notes=["n1", "n1"],
    )  # fmt: skip
    assert cov.expected_slots == 12 and cov.present_slots == 4
    assert spans(cov.confirmed_empty) == [(ts(T0 + 2 * STEP), ts(T0 + 4 * STEP))]
    assert spans(cov.missing) == [(ts(T0 + 4 * STEP), ts(T0 + 5 * STEP)), (ts(T0 + 6 * STEP), ts(T0 + 9 * STEP)),
                                  (ts(T0 + 10 * STEP), ts(T0 + 12 * STEP))]  # fmt: skip
    assert cov.missing[0].reason.startswith("no candle returned") and cov.missing[1].reason == "empty page"
    assert cov.missing_slots == 6 and cov.confirmed_slots == 2 and not cov.complete
    assert cov.notes == ("n1",)
    assert "4/12 slots present, 2 confirmed empty, 6 missing" in cov.summary()
    json.dumps(cov.to_dict())  # JSON-safe for asset metadata


def test_clip_gives_the_view_of_one_day():
    cov = build_coverage(frame([0, 300]), symbol="X/Y", source="t", start_ms=T0, end_ms=T0 + 576 * STEP,
                         now_ms=T0 + 1000 * STEP, confirmed=[(T0, T0 + 290 * STEP, "before listing")])  # fmt: skip
    day2 = cov.clip(ts(T0 + 288 * STEP), ts(T0 + 576 * STEP))
    assert day2.expected_slots == 288 and day2.present_slots == 1
    assert spans(day2.confirmed_empty) == [(ts(T0 + 288 * STEP), ts(T0 + 290 * STEP))]
    assert day2.missing_slots == 288 - 1 - 2
    day1 = cov.clip(ts(T0), ts(T0 + 288 * STEP))
    assert day1.complete and day1.present_slots == 1 and day1.confirmed_slots == 287


class NoReport(MarketDataProvider):
    """A provider that attaches no coverage (or a frame edited after the provider built its report)."""

    kind = "test"

    def __init__(self, inner=None):
        self.inner = inner

    @property
    def exchange(self) -> str:
        return "x"

    def fetch_ohlcv(self, symbol, start, end, *, now=None):
        if self.inner is not None:
            return self.inner.fetch_ohlcv(symbol, start, end, now=now).iloc[::3].reset_index(drop=True)
        return frame([0, 1, 4])


def test_fetch_with_coverage_without_a_report_calls_every_hole_missing():
    df, cov = NoReport().fetch_with_coverage("A/B", ts(T0), ts(T0 + 6 * STEP), now=FAR_FUTURE)
    assert isinstance(cov, Coverage) and df.attrs[COVERAGE_ATTR] is cov
    assert spans(cov.missing) == [
        (ts(T0 + 2 * STEP), ts(T0 + 4 * STEP)),
        (ts(T0 + 5 * STEP), ts(T0 + 6 * STEP)),
    ]


def test_an_edited_frame_cannot_inherit_a_complete_report():
    """`iloc` keeps pandas attrs: the inner provider's 'complete' report travels with the thinned frame,
    but fetch_with_coverage re-derives the holes from the frame itself."""
    inner = SyntheticProvider(seed=1, gap_probability=0.0, outage_probability=0.0)
    df, cov = NoReport(inner).fetch_with_coverage("A/B", ts(T0), ts(T0 + 288 * STEP), now=FAR_FUTURE)
    assert len(df) == 96 and cov.present_slots == 96 and cov.missing_slots == 192


def test_synthetic_gaps_are_confirmed_by_design():
    p = SyntheticProvider(seed=3, gap_probability=0.05)
    df, cov = p.fetch_with_coverage("ETH/BTC", ts(T0), ts(T0 + 288 * STEP), now=FAR_FUTURE)
    assert cov.complete and cov.confirmed_slots == 288 - len(df) > 0
    live = ts(T0 + 100 * STEP + 1)
    _, cov = p.fetch_with_coverage("ETH/BTC", ts(T0), ts(T0 + 288 * STEP), now=live)
    assert cov.checked_until == ts(T0 + 100 * STEP) and cov.expected_slots == 100


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIRS_ENV, str(tmp_path))
    return tmp_path


def csv_rows(slots) -> str:
    return "timestamp,open,high,low,close,volume\n" + "".join(f"{T0 + i * STEP},1,1,1,1,1\n" for i in slots)


def test_files_interior_holes_are_confirmed_and_the_rest_is_missing(data_dir):
    (data_dir / "ETH_BTC-5m.csv").write_text(csv_rows([10, 11, 15, 20]))
    df, cov = FilesProvider(data_dir).fetch_with_coverage(
        "ETH/BTC", ts(T0), ts(T0 + 30 * STEP), now=FAR_FUTURE
    )
    assert len(df) == 4
    assert spans(cov.confirmed_empty) == [
        (ts(T0 + 12 * STEP), ts(T0 + 15 * STEP)),
        (ts(T0 + 16 * STEP), ts(T0 + 20 * STEP)),
    ]
    assert spans(cov.missing) == [(ts(T0), ts(T0 + 10 * STEP)), (ts(T0 + 21 * STEP), ts(T0 + 30 * STEP))]
    assert "ETH_BTC-5m.csv: no candle there in the file" in cov.confirmed_empty[0].reason


def test_a_truncated_dated_archive_is_reported_missing(data_dir):
    """ETHBTC-5m-2024-01-01.csv covers the whole day by its name but stops at 12:00."""
    lines = "".join(f"{T0 + i * STEP},1,1,1,1,1,0,0,0,0,0,0\n" for i in range(144))
    (data_dir / "ETHBTC-5m-2024-01-01.csv").write_text(lines)
    _, cov = FilesProvider(data_dir).fetch_with_coverage(
        "ETH/BTC", ts(T0), ts(T0 + 288 * STEP), now=FAR_FUTURE
    )
    assert spans(cov.missing) == [(ts(T0 + 144 * STEP), ts(T0 + 288 * STEP))]
    assert "stop at 2024-01-01 12:00 (truncated?)" in cov.missing[0].reason


def test_time_range_text():
    r = TimeRange(ts(T0), ts(T0 + 3 * STEP), "why")
    assert str(r) == "[2024-01-01 00:00, 2024-01-01 00:15) (3 slots)" and r.to_dict()["slots"] == 3


def test_recheck_with_stored_candles_and_the_grace_for_unpublished_candles():
    now = ts(T0 + 12 * STEP + 30_000)  # 01:00:30
    cov = build_coverage(frame([0, 1, 2]), symbol="X/Y", source="t", start_ms=T0, end_ms=T0 + 288 * STEP,
                         now_ms=now.value // 1_000_000, confirmed=[(T0 + 3 * STEP, T0 + 5 * STEP, "listed")])  # fmt: skip
    assert spans(cov.missing) == [(ts(T0 + 5 * STEP), ts(T0 + 12 * STEP))]
    merged = cov.recheck(frame([0, 1, 2, 5, 6, 7, 8, 9]))  # earlier runs stored 00:25..00:45
    assert spans(merged.missing) == [(ts(T0 + 10 * STEP), ts(T0 + 12 * STEP))]
    assert spans(merged.confirmed_empty) == [(ts(T0 + 3 * STEP), ts(T0 + 5 * STEP))]
    assert merged.missing_older_than(pd.Timedelta(minutes=10)) == ()  # 00:50 and 00:55 closed < 10 min ago
    assert spans(merged.missing_older_than(pd.Timedelta(minutes=5))) == [
        (ts(T0 + 10 * STEP), ts(T0 + 11 * STEP))
    ]
    assert merged.missing_older_than(pd.Timedelta(0)) == merged.missing
