"""`strategies`: the strategy registry as a page of the asset catalog.

Each registered strategy with its description, active flag, current parameters (with their types,
ranges and defaults) and its latest verdict (the latest scheduled run's mean window return with its
interval and the p-value against random picks). Materialising it with a `StrategySettings` config
switches a strategy on or off and sets its parameters first (the `configure_strategy` job), validated by
the engine's registry; `python -m pipeline.strategies` does the same from a terminal.
"""

from typing import Any

import dagster as dg

from pipeline.defs.backtests.assets import SCHEDULED_KIND
from pipeline.defs.backtests.config import strategy_name
from pipeline.defs.registry.changes import configure_strategy
from pipeline.defs.registry.config import StrategySettings
from pipeline.metadata import fmt_value, table
from pipeline.resources import StoreResource
from pipeline.results import latest_run, strategy_rows

STRATEGIES = dg.AssetKey("strategies")


def verdict_line(db: Any, name: str) -> dict[str, Any]:
    """The latest scheduled run's mean window return with its interval, p-value and run id."""
    run = latest_run(db, name, SCHEDULED_KIND)
    if run is None:
        return {"latest verdict": "no scheduled run yet"}
    m = db.backtest_metrics(int(run["id"]))
    key = "mean_window_return"
    text = (f"{fmt_value(m.get(key), key)} per window [{fmt_value(m.get(key + '_ci_low'), key)} .. "
            f"{fmt_value(m.get(key + '_ci_high'), key)}], p = {fmt_value(m.get('null_p_value'))}")  # fmt: skip
    return {"latest verdict": text, "run_id": int(run["id"])}


def registry_metadata(db: Any) -> dict[str, Any]:
    from engine.strategies import list_strategies

    db.sync_strategies(strategy_rows())
    stored = {r["name"]: r for r in db.all_strategies()}
    rows, specs = [], {}
    for info in list_strategies():
        row = stored.get(info.name, {})
        params = row.get("parameters") or info.parameters
        rows.append({"strategy": info.name, "active": bool(row.get("active", True)), **verdict_line(db, info.name)})
        specs[f"parameters_{info.name}"] = table(
            [{"parameter": p, "current": str(params.get(p, info.parameters[p])),
              "allowed": info.param_specs.get(p, info.param_types[p]).split(": ", 1)[-1]}
             for p in info.parameters],
            ["parameter", "current", "allowed"],
        )  # fmt: skip
        meanings = "; ".join(f"`{p}`: {d}" for p, d in info.param_descriptions.items())
        text = info.description.replace("*", "\\*")  # formulas like 0.5*z(...) are not emphasis
        specs[f"description_{info.name}"] = dg.MetadataValue.md(f"{text}\n\nParameters: {meanings}")
    return {
        "registry": table(rows, ["strategy", "active", "latest verdict"]),
        "active": dg.MetadataValue.int(sum(1 for r in rows if r["active"])),
        **specs,
    }


@dg.asset(
    key=STRATEGIES,
    deps=["strategy_performance"],
    group_name="registry",
    kinds={"sql"},
    description=(
        "The strategy registry: every registered strategy with its description, active flag, parameters "
        "(type, range, default, current value) and latest verdict. Configure one with the "
        "configure_strategy job (Launchpad) or `python -m pipeline.strategies set NAME ...`."
    ),
)
def strategies(context: dg.AssetExecutionContext, config: StrategySettings, store: StoreResource) -> dg.MaterializeResult:
    db = store.get()
    if config.strategy is not None:
        name = strategy_name(config.strategy)
        try:
            row = configure_strategy(db, name, active=config.active, params=config.params,
                                     reset_params=config.reset_params)  # fmt: skip
        except ValueError as exc:
            raise dg.Failure(description=f"cannot configure {name}: {exc}", allow_retries=False) from exc
        state = "active" if row["active"] else "inactive"
        context.log.info(f"{name}: {state}, parameters {row['parameters']}")
    return dg.MaterializeResult(metadata=registry_metadata(db))
