"""Fake exchanges and sessions shared by the provider tests (importable as `provider_fakes`).

No network anywhere: the fakes answer from in-memory books or hand-written bodies in the documented
formats.
"""

from __future__ import annotations

import json


class FakeExchange:
    """A scripted exchange with Binance's fetchOHLCV contract (since, limit, until inclusive).

    `mode` injects a fault: "latest" ignores since and answers with the latest `n` candles (limit too if
    `ignore_limit`), "cap" never returns more than `n` rows (a short page), "empty_at" answers [] for
    pages at `since == at` (`times` times, forever when None), "shuffle" returns rows out of order.
    `errors` are raised by successive calls first (None = answer normally).
    """

    id = "binance"
    rateLimit = 50

    def __init__(
        self, book, mode="", n=100, at=None, times=None, errors=(), ignore_limit=False, headers=None
    ):
        self.book = sorted((list(r) for r in book), key=lambda r: r[0])
        self.mode, self.n, self.at, self.times, self.ignore_limit = mode, n, at, times, ignore_limit
        self.errors = list(errors)
        self.last_response_headers = headers or {}
        self.calls: list[dict] = []

    def fetch_ohlcv(self, symbol, timeframe="5m", since=None, limit=None, params=None):
        params = params or {}
        self.calls.append({"since": since, "limit": limit, "until": params.get("until")})
        if self.errors:
            err = self.errors.pop(0)
            if err is not None:
                raise err
        if self.mode == "latest":
            return [list(r) for r in self.book[-(self.n if self.ignore_limit else min(self.n, limit)) :]]
        if (
            self.mode == "empty_at"
            and since == self.at
            and limit != 1
            and (self.times is None or self.times > 0)
        ):
            self.times = None if self.times is None else self.times - 1
            return []
        until = params.get("until")
        rows = [list(r) for r in self.book if r[0] >= since and (until is None or r[0] <= until)][:limit]
        if self.mode == "cap":
            rows = rows[: self.n]
        if self.mode == "shuffle":
            rows = rows[1::2] + rows[::2]
        return rows


class Resp:
    """A `requests.Response` stand-in: a status code and a JSON body (None = not JSON)."""

    def __init__(self, status_code: int, body=None):
        self.status_code, self._body, self.headers = status_code, body, {}
        self.text = json.dumps(body) if body is not None else "<html>oops</html>"

    def json(self):
        if self._body is None:
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
        return self._body


class RoutingSession:
    """A fake Nobitex `requests.Session`: `stats`, `recent` (resolution 60) and `history` (resolution 5)
    are queues of bodies or `Resp`s; `default_history` answers when the history queue is empty."""

    def __init__(self, history=(), recent=(), stats=(), default_history=None):
        self.queues = {"stats": list(stats), "recent": list(recent), "history": list(history)}
        self.default_history = default_history
        self.calls: list[tuple[str, dict]] = []

    def get(self, url, params=None, timeout=None):
        params = dict(params or {})
        route = "stats" if url.endswith("/market/stats") else ("recent" if params.get("resolution") == "60"
                                                             else "history")  # fmt: skip
        self.calls.append((route, params))
        if route == "history" and not self.queues[route] and self.default_history is not None:
            item = self.default_history(params)
        else:
            item = self.queues[route].pop(0)
        return item if isinstance(item, Resp) else Resp(200, item)

    def routes(self) -> list[str]:
        return [r for r, _ in self.calls]
