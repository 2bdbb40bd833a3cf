"""Research: features and rankings (one refresh op that also runs the scheduled backtests), the refresh sensor."""
