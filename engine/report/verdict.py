"""The verdict: one paragraph in plain words, built only from the run's own statistics.

The wording is deliberately conservative: an "edge" needs both a positive interval for the mean window
return and a significant win over random picks of the same count. Everything else is said as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.report import fmt
from engine.report.data import Difference, aligned_window_returns, compare_returns, metric

#: fewer windows than this and the report warns that the intervals are wide
FEW_WINDOWS = 180


@dataclass
class Verdict:
    kind: str  # edge | partial | none | loss | empty
    title: str
    sentences: list[str]

    @property
    def text(self) -> str:
        return " ".join([self.title, *self.sentences])


def classify(result: Any) -> tuple[str, str]:
    """(kind, title) from the interval of the mean window return and the p-value against random picks."""
    m = result.metrics
    alpha = 1 - float(result.config.confidence)
    if not m.get("trade_count"):
        return "empty", "No trades: nothing to judge."
    low, high = metric(result, "mean_window_return_ci_low"), metric(result, "mean_window_return_ci_high")
    p = metric(result, "null_p_value")
    beats_null = p is not None and p < alpha
    if low is not None and low > 0 and (beats_null or p is None):
        return "edge", "Evidence of an edge."
    if high is not None and high < 0:
        return "loss", "Loses money after costs."
    if beats_null:
        return "partial", "Better than random picks, but the net return is not reliably positive."
    if low is not None and low > 0:
        return "partial", "Positive net return, but no better than random picks from the same universe."
    return "none", "No evidence of an edge."


def excess_over_benchmark(result: Any) -> Difference | None:
    a, b = aligned_window_returns(result, result, "benchmark_return")
    block = int(metric(result, "bootstrap_block") or 1)
    return compare_returns(a, b, result.config, block)


def verdict(result: Any) -> Verdict:
    cfg, m = result.config, result.metrics
    kind, title = classify(result)
    conf = f"{cfg.confidence:.0%}"
    n_windows = int(m.get("window_count") or m.get("decision_times") or 0)
    window = fmt.hours(cfg.window_hours)
    if kind == "empty":
        return Verdict(kind, title, [
            f"The strategy selected no completed trade in {n_windows:,} decision times; "
            "check the risk gates, the parameters and the data coverage."])
    out = [
        f"After {fmt.bps(cfg.fee_bps)} fee and {fmt.bps(cfg.slippage_bps)} slippage per side, the mean return "
        f"per {window} window was {fmt.pct(m.get('mean_window_return'), 3)} ({conf} interval "
        f"{fmt.pct(m.get('mean_window_return_ci_low'), 3)} to {fmt.pct(m.get('mean_window_return_ci_high'), 3)}, "
        f"block bootstrap over {n_windows:,} windows, block of {fmt.count(m.get('bootstrap_block'))})."
    ]
    if metric(result, "null_mean_window_return") is not None:
        out.append(
            f"Random picks of the same number of eligible symbols average "
            f"{fmt.pct(m.get('null_mean_window_return'), 3)} per window; the one-sided p-value of \"no better "
            f"than random picks\" (block bootstrap of the excess) is {fmt.p_text(m.get('null_p_value'))}.")
    if metric(result, "benchmark_mean_window_return") is not None:
        sentence = (
            f"The equal-weight universe benchmark returned {fmt.pct(m.get('benchmark_mean_window_return'), 3)} "
            f"per window ({fmt.pct(m.get('benchmark_total_return'))} in total, against "
            f"{fmt.pct(m.get('total_return'))} for the strategy, both non-compounded)")
        diff = excess_over_benchmark(result)
        if diff is not None and diff.mean is not None:
            sentence += (f"; the excess of {fmt.pct(diff.mean, 3)} per window has a {conf} interval of "
                         f"{fmt.pct(diff.low, 3)} to {fmt.pct(diff.high, 3)} (one-sided {fmt.p_text(diff.p_value)})")
        out.append(sentence + ".")
    out.append(cost_sentence(result))
    if n_windows < FEW_WINDOWS:
        out.append(f"With only {n_windows:,} windows the intervals are wide: treat this as a first look.")
    return Verdict(kind, title, out)


def cost_sentence(result: Any) -> str:
    cfg = result.config
    be = metric(result, "break_even_fee_bps")
    if be is None:
        return "The break-even fee is not defined for this run."
    if be < 0:
        return (f"The selection loses money even with zero fees (break-even fee {fmt.bps(be)} per side, "
                f"given {fmt.bps(cfg.slippage_bps)} slippage).")
    if be < cfg.fee_bps:
        return (f"Costs erase the gross return: the break-even fee is {fmt.bps(be)} per side, below the "
                f"{fmt.bps(cfg.fee_bps)} assumed.")
    return (f"The break-even fee is {fmt.bps(be)} per side, {fmt.bps(be - cfg.fee_bps)} above the "
            f"{fmt.bps(cfg.fee_bps)} assumed.")


def significance_sentence(diff: Difference | None, confidence: float, subject: str = "The difference") -> str:
    """How to read a difference between two runs; never silent about significance."""
    conf = f"{confidence:.0%}"
    if diff is None or diff.mean is None:
        return (f"{subject} cannot be tested: the runs share {0 if diff is None else diff.n} decision time(s), "
                "too few for a paired "
                "test, so treat the ordering as unproven.")
    verdict_word = ("significant" if diff.p_value is not None and diff.p_value < 1 - confidence
                    else "not significant")
    return (f"{subject} of {fmt.pct(diff.mean, 3)} per window ({conf} interval {fmt.pct(diff.low, 3)} "
            f"to {fmt.pct(diff.high, 3)}, one-sided {fmt.p_text(diff.p_value)}, {diff.n:,} paired windows) is "
            f"{verdict_word} at the {1 - confidence:.0%} level.")
