"""Checks on `paper_trades`.

- `paper_parity` (blocking): the walk-forward replayed over the paper period on the stored candles must
  give exactly the paper book's picks, ranks, weights, scores, entry prices and settled outcomes. A
  difference whose inputs changed (a revised, added or removed candle the decision or settlement read)
  is explained and fails at WARN; any other difference fails at ERROR, which blocks `paper_performance`.
- `paper_candle_revisions` (WARN): every candle that differs from the version a paper decision or
  settlement first read, with old and new values and what used it.
"""


import dagster as dg

from pipeline.defs.paper.assets import PAPER_TRADES
from pipeline.defs.paper.replay import differences, replay
from pipeline.defs.paper.report import DIFF_COLUMNS, REVISION_COLUMNS, revision_rows, typed
from pipeline.metadata import fmt_ts
from pipeline.resources import StoreResource, UniverseResource

PARITY = "paper_parity"
REVISIONS = "paper_candle_revisions"


def _listing(rows: list[dict], limit: int = 8) -> str:
    shown = [f"{r['strategy']} @ {fmt_ts(r['decision_time'])} {r['symbol']}: {r['field']} paper {r['paper']} vs "
             f"replay {r['replay']}" for r in rows[:limit]]  # fmt: skip
    return "; ".join(shown) + (f"; and {len(rows) - limit} more" if len(rows) > limit else "")


@dg.asset_check(
    asset=PAPER_TRADES,
    name=PARITY,
    blocking=True,
    description="The walk-forward replayed over the paper period on the stored candles gives exactly the paper "
    "book's picks, entry prices and settled returns; differences are listed with strategy, symbol and time, "
    "and explained when the candles they read were revised since.",
)
def paper_parity(store: StoreResource, universe: UniverseResource) -> dg.AssetCheckResult:
    uni, db = universe.load(), store.get()
    decisions = db.paper.decisions()
    if decisions.empty:
        return dg.AssetCheckResult(passed=True, description="no paper decision recorded yet: nothing to compare",
                                   metadata={"decisions_compared": 0})  # fmt: skip
    replays = replay(db, uni, decisions)
    rows, counts = differences(replays, db.paper.trades())
    unexplained = [r for r in rows if not r["explanation"]]
    metadata = {
        "decisions_compared": dg.MetadataValue.int(counts["decisions"]),
        "trades_compared": dg.MetadataValue.int(counts["trades"]),
        "settled_trades_compared": dg.MetadataValue.int(counts["settled"]),
        "replayed_groups": dg.MetadataValue.int(len(replays)),
        "differences": dg.MetadataValue.int(len(rows)),
        "unexplained_differences": dg.MetadataValue.int(len(unexplained)),
        "period": f"{fmt_ts(decisions['decision_time'].min())} .. {fmt_ts(decisions['decision_time'].max())}",
    }
    errors = [f"{r.strategy}: the replay could not run: {r.error}" for r in replays if r.error]
    if errors:
        metadata["replay_errors"] = dg.MetadataValue.md("\n".join(f"- {e}" for e in errors))
    if rows:
        ordered = unexplained + [r for r in rows if r["explanation"]]
        metadata["difference_table"] = typed(ordered[:200], DIFF_COLUMNS)
    if unexplained:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
            description=f"{len(unexplained)} differences between the paper book and the backtest replay that no data "
                        f"revision explains (lookahead or non-determinism?): {_listing(unexplained)}",
        )  # fmt: skip
    if rows:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
            description=f"{len(rows)} differences, all explained by candles revised after the paper book read them "
                        f"(see paper_candle_revisions): {_listing(rows)}",
        )  # fmt: skip
    return dg.AssetCheckResult(
        passed=True, metadata=metadata,
        description=f"the replay reproduces all {counts['decisions']} decisions and {counts['settled']} settled "
                    "trades exactly",
    )  # fmt: skip


@dg.asset_check(
    asset=PAPER_TRADES,
    name=REVISIONS,
    blocking=False,
    description="Candles changed, removed or filled in after a paper decision or settlement read them (the "
    "store keeps the new values; the ledger keeps the first-seen version and its hash).",
)
def paper_candle_revisions(store: StoreResource, universe: UniverseResource) -> dg.AssetCheckResult:
    uni, db = universe.load(), store.get()
    revised = db.paper.revisions(uni.exchange)
    if revised.empty:
        return dg.AssetCheckResult(passed=True, description="every candle the paper book read is stored unchanged",
                                   metadata={"revised_candles": 0})  # fmt: skip
    rows = revision_rows(revised, db.paper.decisions(), db.paper.trades())
    first = rows[0]
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(rows)} candles differ from what the paper book read, e.g. {first['symbol']} "
        f"{fmt_ts(first['open_time'])}: {first['change']} (used by: {first['used_by']}). The store keeps the new "
        "values; re-settle affected trades with the paper_trading config resettle: true (docs/paper.md).",
        metadata={
            "revised_candles": dg.MetadataValue.int(len(rows)),
            "symbols": ", ".join(sorted({r["symbol"] for r in rows})),
            "revisions": typed(rows[:200], REVISION_COLUMNS),
        },
    )
