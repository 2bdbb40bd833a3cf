"""`features` and `rankings`: the live cross-sectional view, refreshed after each ingestion.

Features are shown in the lineage but never stored (SPEC: feature frames are derived). One multi-asset
computes them in memory and hands them straight to the ranking, yielding a `MaterializeResult` for
each; an IO manager would have to persist them, and `mem_io_manager` breaks under the multiprocess
executor.
"""


from collections.abc import Iterator

import dagster as dg
import pandas as pd
from pydantic import Field

from pipeline.quality import fmt_ts
from pipeline.research import active_strategies, frame_table, load_candles, md_table
from pipeline.resources import StoreResource, UniverseResource

GROUP = "research"
FEATURE_PREVIEW = ("rsi", "macd_hist", "macd_hist_slope", "ema_dist", "atr_pct", "volume_z", "quote_volume_24h")
RANKING_PREVIEW = ("rank", "symbol", "score", "eligible", "candidate", "selected", "weight", "reasons")


class RankingsConfig(dg.Config):
    """How much history feeds the live ranking."""

    lookback_days: int = Field(
        default=30, ge=1, description="Days of stored 5m candles read per symbol (must cover the warm-up)."
    )
    feature_timeframe: str = Field(default="1h", description="Bar size the features are computed on.")
    max_positions: int = Field(default=3, ge=1, description="Symbols selected per decision time.")
    warmup_bars: int = Field(default=0, ge=0, description="Closed feature bars needed; 0 = engine default.")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "features",
            deps=["candles"],
            group_name=GROUP,
            kinds={"pandas"},
            description=(
                "Technical features (RSI, MACD, EMA distance, ATR%, Bollinger width, volume) per symbol on "
                "closed feature-timeframe bars. Computed in memory by the engine, never persisted."
            ),
            metadata={"persisted": False},
        ),
        dg.AssetSpec(
            "rankings",
            deps=["features"],
            group_name=GROUP,
            kinds={"sql"},
            description=(
                "Per active strategy: the cross-sectional ranking at the latest decision time (score, gates "
                "passed or failed and why, selected symbols), saved as a snapshot in the store."
            ),
        ),
    ],
    name="features_and_rankings",
    can_subset=False,
)
def features_and_rankings(
    context: dg.AssetExecutionContext,
    config: RankingsConfig,
    store: StoreResource,
    universe: UniverseResource,
) -> Iterator[dg.MaterializeResult]:
    from engine.backtest import WalkForwardConfig
    from engine.features import compute_features
    from engine.ranking import rank_universe
    from engine.strategies import get_strategy

    uni = universe.load()
    db = store.get()
    ref = uni.reference_time()
    candles = load_candles(db, uni, start=ref - pd.Timedelta(days=config.lookback_days), end=ref)
    if not candles:
        raise dg.Failure(
            description=f"no stored candles for {uni.name!r} in the last {config.lookback_days} days up to "
            f"{fmt_ts(ref)}: materialise `candles` first (backfill from the UI or `make demo`)"
        )

    # features (in memory only)
    rows = []
    for symbol, df in sorted(candles.items()):
        feats = compute_features(df, timeframe=config.feature_timeframe)
        last = feats.dropna(how="all").tail(1)
        row = {"symbol": symbol, "bars": len(feats), "last_bar": last.index[-1] if len(last) else None}
        if len(last):
            row.update({c: last[c].iloc[-1] for c in FEATURE_PREVIEW if c in last.columns})
        rows.append(row)
    cols = ["symbol", "bars", "last_bar", *[c for c in FEATURE_PREVIEW if any(c in r for r in rows)]]
    yield dg.MaterializeResult(
        asset_key="features",
        metadata={
            "symbols": dg.MetadataValue.int(len(candles)),
            "timeframe": config.feature_timeframe,
            "persisted": dg.MetadataValue.bool(False),
            "latest_features": dg.MetadataValue.md(md_table(rows, cols)),
        },
    )

    # rankings per active strategy
    cfg = WalkForwardConfig(
        feature_timeframe=config.feature_timeframe,
        max_positions=config.max_positions,
        warmup_bars=config.warmup_bars or None,
    )
    meta: dict[str, object] = {}
    picks = []
    for row in active_strategies(db):
        name = row["name"]
        strategy = get_strategy(name, row["parameters"])
        ranking = rank_universe(candles, strategy, cfg=cfg)
        if ranking.empty:
            context.log.warning(f"{name}: no decision time supported by the data")
            continue
        when = pd.Timestamp(ranking["decision_time"].iloc[0])
        snapshot_id = db.save_ranking_snapshot(strategy=name, decision_time=when, ranking=ranking)
        chosen = ranking.loc[ranking["selected"].astype(bool), "symbol"].tolist()
        n_eligible = int(ranking["eligible"].astype(bool).sum())
        picks.append({"strategy": name, "decision_time": when, "eligible": n_eligible,
                      "selected": ", ".join(chosen) or "(none)", "snapshot_id": snapshot_id})
        meta[f"ranking_{name}"] = dg.MetadataValue.md(
            f"**{name}** at {fmt_ts(when)} (hold {cfg.window_hours:g}h)\n\n"
            + frame_table(ranking, RANKING_PREVIEW, limit=len(ranking))
        )
        context.log.info(f"{name} @ {fmt_ts(when)}: selected {chosen or 'nothing'} of {n_eligible} eligible")
    yield dg.MaterializeResult(
        asset_key="rankings",
        metadata={
            "picks": dg.MetadataValue.md(
                md_table(picks, ["strategy", "decision_time", "eligible", "selected", "snapshot_id"])
            ),
            "decision_time": fmt_ts(picks[0]["decision_time"]) if picks else "-",
            **meta,
        },
    )
