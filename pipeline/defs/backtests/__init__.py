"""Backtests: scheduled (per strategy), ad-hoc and request runs, performance, comparison, request sensor."""
