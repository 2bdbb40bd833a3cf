"""Paper trading: record each active strategy's picks at every decision time, settle them, and prove them
against the walk-forward replay (docs/paper.md)."""
