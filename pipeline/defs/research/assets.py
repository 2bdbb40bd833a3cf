"""The research refresh: `features`, `rankings`, and the backtest area's scheduled backtests, performance and
comparison, as ONE multi-asset op.

One op, because a refresh computes each symbol's features once (`engine.backtest.prepare_histories`) and
shares them with the features preview, every strategy's ranking and every strategy's backtest; an IO
manager would have to persist feature frames, which are never stored (they are derived data). The op
can be subset: materialising only `strategy_comparison` reads the store and recomputes nothing.
Each strategy's backtest is its own spec and fails on its own: the others are still recorded and shown,
then the step fails and names the failed strategies.
"""

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from pipeline.defs.backtests.assets import (
    COMPARISON,
    PERFORMANCE,
    backtest_key,
    backtest_specs,
    comparison,
    performance,
    run_scheduled,
)
from pipeline.defs.research.config import RefreshConfig, refresh_engine_config
from pipeline.metadata import fmt_ts, table
from pipeline.resources import StoreResource, UniverseResource
from pipeline.results import RunFailed, active_strategies, load_candles

GROUP = "research"
FEATURES = dg.AssetKey("features")
RANKINGS = dg.AssetKey("rankings")
#: the feature snapshot in narrow tables (the asset page is about 500 px wide)
FEATURE_TABLES = {
    "momentum_features": ("symbol", "rsi", "macd_hist", "macd_hist_slope"),
    "trend_and_volatility_features": ("symbol", "ema_dist", "trend_slope", "atr_pct", "bb_width"),
    "liquidity_features": ("symbol", "volume_z", "volume_trend", "quote_volume_24h"),
    "bars": ("symbol", "bars_seen", "close"),
}
RANKING_PREVIEW = ("rank", "symbol", "score", "weight", "reasons")
RISK_GATE_FEATURES = ("atr_pct", "quote_volume_24h")


def research_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            FEATURES, deps=["candles"], group_name=GROUP, kinds={"pandas"}, metadata={"persisted": False},
            description="Technical features (RSI, MACD, EMA distance, trend slope, ATR%, Bollinger width, volume) "
                        "per symbol on closed feature-timeframe bars. Computed in memory once per refresh and "
                        "shared with the rankings and the backtests; never persisted. The preview shows the "
                        "closed bars the latest decision used.",
        ),
        dg.AssetSpec(
            RANKINGS, deps=[FEATURES], group_name=GROUP, kinds={"sql"},
            description="Per active strategy: the cross-sectional ranking at the latest decision time (score, "
                        "gates passed or failed and why, with the feature values behind each gate, selected "
                        "symbols), saved as a snapshot in the store.",
        ),
    ]  # fmt: skip


def _gate_columns(strategy: Any) -> list[str]:
    return ["symbol", *RISK_GATE_FEATURES, *strategy.gate_features, "reasons"]


def gate_text(strategy: Any, cfg: Any) -> str:
    """Every gate with its threshold, so the values in the gate table can be checked by eye."""
    from engine.features import default_warmup_bars

    p = strategy.params
    rules = [f"atr_pct <= {p['max_atr_pct']:.2%} (max_atr_pct {p['max_atr_pct']:g})",
             f"quote_volume_24h >= {p['min_quote_volume_24h']:g} and > 0 (quote currency)",
             f">= {cfg.warmup_bars or default_warmup_bars()} closed {cfg.feature_timeframe} bars",
             "an entry candle at t - 5m", *strategy.gate_rules()]  # fmt: skip
    return "Gates (all must pass): " + "; ".join(f"`{r}`" for r in rules) + "."


def _rank_all(histories: Any, strategies: list[Any], cfg: Any, failed: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Each strategy's ranking; a strategy that raises is reported in `failed` and the others go on."""
    from engine.ranking import rank_universe

    out = {}
    for strategy in strategies:
        try:
            out[strategy.name] = rank_universe(histories, strategy, cfg=cfg)
        except Exception as exc:  # noqa: BLE001 - one strategy's bug must not stop the others
            failed[strategy.name] = f"ranking failed: {type(exc).__name__}: {exc}"
    return out


def _features_result(rankings: dict[str, pd.DataFrame], n_symbols: int, cfg: Any) -> dg.MaterializeResult:
    """The feature snapshot the latest decision used (closed bars only: the same rows the rankings gate)."""
    snapshot = next((r for r in rankings.values() if len(r)), pd.DataFrame())
    when = snapshot["decision_time"].iloc[0] if len(snapshot) else None
    records = snapshot.sort_values("symbol").to_dict("records") if len(snapshot) else []
    tables = {name: table(records, cols) for name, cols in FEATURE_TABLES.items()} if records else {
        "closed_bar_features": dg.MetadataValue.text("no decision time supported by the data")}
    return dg.MaterializeResult(
        asset_key=FEATURES,
        metadata={
            "symbols": dg.MetadataValue.int(n_symbols),
            "timeframe": cfg.feature_timeframe,
            "persisted": dg.MetadataValue.bool(False),
            "decision_time": fmt_ts(when),
            "bars_used": (f"closed {cfg.feature_timeframe} bars only: the newest one a decision may use opened at "
                          f"{fmt_ts(when - pd.Timedelta(milliseconds=cfg.timeframe_ms))} and closed at {fmt_ts(when)}"
                          if when is not None else "-"),
            **tables,
        },
    )


def _rankings_result(context: Any, db: Any, strategies: list[Any], rankings: dict[str, pd.DataFrame],
                     cfg: Any) -> dg.MaterializeResult:  # fmt: skip
    meta: dict[str, Any] = {}
    picks = []
    for strategy in strategies:
        ranking = rankings.get(strategy.name)
        if ranking is None:
            continue  # failed: reported with the step's failure
        if ranking.empty:
            context.log.warning(f"{strategy.name}: no decision time supported by the data")
            continue
        when = pd.Timestamp(ranking["decision_time"].iloc[0])
        snapshot_id = db.save_ranking_snapshot(strategy=strategy.name, decision_time=when, ranking=ranking)
        chosen = ranking.loc[ranking["selected"].astype(bool), "symbol"].tolist()
        n_eligible = int(ranking["eligible"].astype(bool).sum())
        picks.append({"strategy": strategy.name, "decision_time": when, "eligible": n_eligible,
                      "selected": ", ".join(chosen) or "(none)", "snapshot_id": snapshot_id})  # fmt: skip
        records = ranking.to_dict("records")
        meta[f"ranking_{strategy.name}"] = table(records, RANKING_PREVIEW)
        meta[f"gate_inputs_{strategy.name}"] = table(records, _gate_columns(strategy))
        meta[f"gates_{strategy.name}"] = dg.MetadataValue.md(gate_text(strategy, cfg))
        context.log.info(f"{strategy.name} @ {fmt_ts(when)}: selected {chosen or 'nothing'} of {n_eligible} "
                         "eligible")  # fmt: skip
    return dg.MaterializeResult(
        asset_key=RANKINGS,
        metadata={
            "picks": table(picks, ["strategy", "eligible", "selected", "snapshot_id"]),
            "decision_time": fmt_ts(picks[0]["decision_time"]) if picks else "-",
            "hold_hours": dg.MetadataValue.float(float(cfg.window_hours)),
            **meta,
        },
    )


def build_research_refresh(strategies: Sequence[str]) -> dg.AssetsDefinition:
    """The refresh op for the engine's registered strategies (one backtest spec each)."""

    @dg.multi_asset(specs=[*research_specs(), *backtest_specs(strategies)], name="research_refresh",
                    can_subset=True)  # fmt: skip
    def research_refresh(
        context: dg.AssetExecutionContext, config: RefreshConfig, store: StoreResource, universe: UniverseResource
    ) -> Iterator[dg.MaterializeResult]:
        from engine.backtest import prepare_histories
        from engine.fingerprint import data_fingerprint
        from engine.strategies import get_strategy

        selected = context.selected_asset_keys
        uni, db = universe.load(), store.get()
        cfg = refresh_engine_config(config)
        failed: dict[str, str] = {}
        if selected - {PERFORMANCE, COMPARISON}:
            ref = uni.reference_time()
            start = ref - pd.Timedelta(days=config.lookback_days) if config.lookback_days else None
            candles = load_candles(db, uni, start=start, end=ref)
            if not candles:
                raise dg.Failure(description=f"no stored candles for {uni.name!r} up to {fmt_ts(ref)}: materialise "
                                 "`candles` first (backfill from the UI, `python -m pipeline.backfill` or "
                                 "`make demo`)")  # fmt: skip
            histories = prepare_histories(candles, cfg.feature_timeframe)  # features: once per symbol
            context.log.info(f"features computed once for {len(histories)} symbols ({cfg.feature_timeframe} bars)")
            rows, objects = [], []
            for row in active_strategies(db):
                try:
                    objects.append(get_strategy(row["name"], row["parameters"]))
                    rows.append(row)
                except ValueError as exc:  # bad stored parameters: reported, the other strategies go on
                    failed[row["name"]] = f"invalid parameters in the registry: {exc}"
            rankings = _rank_all(histories, objects, cfg, failed) if selected & {FEATURES, RANKINGS} else {}
            if FEATURES in selected:
                yield _features_result(rankings, len(histories), cfg)
            if RANKINGS in selected:
                yield _rankings_result(context, db, objects, rankings, cfg)
            shared = {"candles": candles, "histories": histories, "fingerprint": data_fingerprint(candles)}
            for row in rows:
                if backtest_key(row["name"]) not in selected:
                    continue
                try:
                    yield run_scheduled(context, db, uni, row, cfg, shared)
                except Exception as exc:  # noqa: BLE001 - recorded or reported; the others go on
                    context.log.error(f"{row['name']}: backtest failed: {exc}")
                    failed[row["name"]] = "; ".join(filter(None, [failed.get(row["name"]), str(exc)]))
        try:
            if PERFORMANCE in selected:
                yield performance(context, db, failed)
            if COMPARISON in selected:
                yield comparison(context, db, config.compare_run_ids)
        except RunFailed as exc:
            raise dg.Failure(description=str(exc)) from exc
        if failed:
            raise dg.Failure(
                description=f"strategies failed: {sorted(failed)}: "
                + "; ".join(f"{k}: {v}" for k, v in failed.items()),
                metadata={"failed": dg.MetadataValue.json(failed)},
            )

    return research_refresh

