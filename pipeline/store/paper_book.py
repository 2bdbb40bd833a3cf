"""`PaperBook`: the paper trading tables behind the store's transactions (`Store.paper`).

Every write is one transaction: a decision with its trades and the ledger rows of the candles it read;
a decision's settlements with the ledger rows of their windows and, once nothing is open, its window
return. A failure anywhere leaves none of it behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from pipeline.store import paper as _paper
from pipeline.store.paper import PaperAlreadyRecorded

if TYPE_CHECKING:
    from pipeline.store.store import Store

#: a decision's trades (symbol order: status, weight, return_pct) -> its window return
WindowReturn = Callable[[pd.DataFrame], float]


class PaperBook:
    """Paper decisions, trades and the candle ledger of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- reads ----------------------------------------------------------------------------------------

    def recorded_times(self) -> dict[str, list[int]]:
        """Decision times (epoch ms) already recorded, per strategy."""
        with self.store._read() as conn:
            return _paper.recorded_times(conn)

    def latest_closed(self, exchange: str, symbols: Sequence[str], as_of: pd.Timestamp) -> dict[str, int | None]:
        """Per symbol, the open time (epoch ms) of the newest stored candle closed by `as_of`."""
        with self.store._read() as conn:
            return _paper.latest_closed(conn, exchange, symbols, int(as_of.value // 1_000_000))

    def decisions(self, strategy: str | None = None, since: pd.Timestamp | None = None) -> pd.DataFrame:
        with self.store._read() as conn:
            return _paper.decisions(conn, strategy, _ms(since))

    def trades(self, *, status: Sequence[str] | None = None, strategy: str | None = None,
               since: pd.Timestamp | None = None) -> pd.DataFrame:  # fmt: skip
        with self.store._read() as conn:
            return _paper.trades(conn, status=status, strategy=strategy, since_ms=_ms(since))

    def unsettled_decisions(self, before: pd.Timestamp) -> pd.DataFrame:
        with self.store._read() as conn:
            return _paper.unsettled_decisions(conn, int(before.value // 1_000_000))

    def revisions(self, exchange: str) -> pd.DataFrame:
        """Candles that differ from the version a paper decision or settlement first read."""
        with self.store._read() as conn:
            return _paper.revisions(conn, exchange)

    # --- writes ---------------------------------------------------------------------------------------

    def record_decision(
        self,
        row: Mapping[str, Any],
        trades: Sequence[Mapping[str, Any]],
        read: Mapping[str, pd.DataFrame],
        seen_at: datetime,
    ) -> int:
        """Insert a decision, its trades and the ledger rows of what it read, in ONE transaction.

        `read[symbol]` is the candle frame the decision read. Raises `PaperAlreadyRecorded` when the
        (strategy, decision time) exists, also when a concurrent tick won the race for the unique key.
        """
        try:
            with self.store._write() as conn:
                decision_id = _paper.insert_decision(conn, row, trades)
                self._extend(conn, row["exchange"], read, seen_at)
                return decision_id
        except sa.exc.IntegrityError as exc:  # lost the race for the unique key, or a genuinely bad row
            if int(row["decision_time"]) in self.recorded_times().get(row["strategy"], []):
                raise PaperAlreadyRecorded(
                    f"{row['strategy']} @ {pd.Timestamp(int(row['decision_time']), unit='ms', tz='UTC')} was "
                    "recorded by a concurrent tick"
                ) from exc
            raise

    def settle_decision(
        self,
        decision_id: int,
        exchange: str,
        settlements: Mapping[str, Mapping[str, Any]],
        read: Mapping[str, pd.DataFrame],
        seen_at: datetime,
        window_return: WindowReturn,
        *,
        previous: Mapping[str, list[Any]] | None = None,
    ) -> list[str]:
        """Settle (or, with `previous`, re-settle) some trades of one decision in ONE transaction; when no
        trade is left open, set the decision's window return. Returns the symbols written."""
        with self.store._write() as conn:
            written = [
                symbol for symbol, values in settlements.items()
                if _paper.settle_trade(conn, decision_id, symbol, values,
                                       previous=None if previous is None else previous[symbol])
            ]  # fmt: skip
            self._extend(conn, exchange, read, seen_at)
            trades = _paper.decision_trades(conn, decision_id)
            if not (trades["status"] == "open").any():
                _paper.finish_decision(conn, decision_id, window_return(trades), seen_at)
            return written

    def _extend(self, conn: sa.Connection, exchange: str, read: Mapping[str, pd.DataFrame],
                seen_at: datetime) -> None:  # fmt: skip
        ids = _paper.series_ids(conn, exchange, list(read))
        for symbol, frame in read.items():
            if symbol in ids and len(frame):
                _paper.extend_ledger(conn, ids[symbol], frame, seen_at)


def _ms(ts: pd.Timestamp | None) -> int | None:
    return None if ts is None else int(pd.Timestamp(ts).value // 1_000_000)
