"""A deterministic synthetic market: any symbol, any date range, the same candle for the same
(seed, symbol, open time) on every call.

Why it is built this way
- Randomness is *counter based*: every random number is a hash (SplitMix64) of a key derived from
  (seed, symbol, stream) and a counter (the 5m slot or the UTC day number). Nothing depends on the
  requested range or on call order, so re-ingesting any range is idempotent.
- Prices are continuous across days: a daily log-price anchor is chained from a fixed epoch in fixed
  blocks of days (cached), and each day's 288 increments form a bridge that starts at the day's anchor
  and ends exactly at the next day's anchor. Every array is computed over a fixed shape (a whole day, a
  whole block), so floating point results are identical whatever range is asked for.
- Realism knobs the strategy rules need: a common market factor (per-symbol beta) at daily and
  intraday scale, volatility clustering (a persistent daily log-volatility regime plus intraday
  bursts), intraday and weekly volume seasonality, volume that rises with the size of the move, and
  gaps (isolated missing candles and occasional multi-candle outages).
- Output is labelled: `synthetic = True`, exchange "synthetic" and a `source="synthetic"` column.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from engine.data._common import Clock, resolve_now, to_ms
from engine.data.base import COVERAGE_ATTR, MarketDataProvider
from engine.data.coverage import build_coverage
from engine.schemas import empty_candles, validate_candles
from engine.timeframes import BASE_MS, DAY_MS, ms_index

SLOTS_PER_DAY = DAY_MS // BASE_MS  # 288
EPOCH_DAY = 16_801  # 2016-01-01: anchors are chained from here, forwards and backwards
BLOCK_DAYS = 512
VOL_LAGS = 128  # daily log-vol is an AR(1)(phi) truncated to VOL_LAGS terms (phi**128 ~ 4e-4)
VOL_PHI = 0.94
INTRADAY_PHI = 0.97  # persistence of intraday volatility bursts (per 5m slot)
MARKET_DAILY_VOL = 0.025
MARKET_LOGVOL_STD = 0.5
IDIO_LOGVOL_STD = 0.45

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_PI = 2.0 * np.pi
_MARKET = "\x00market"  # cannot clash with a real symbol


def _key(seed: int, name: str, stream: str) -> np.uint64:
    """64-bit stream key from (seed, symbol, stream name)."""
    digest = hashlib.blake2b(f"{seed}\x1f{name}\x1f{stream}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _uniform(key: np.uint64, counter: np.ndarray) -> np.ndarray:
    """U(0, 1) (both ends excluded) from SplitMix64(key + counter * golden)."""
    x = key + counter.astype(np.int64).view(np.uint64) * _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    x = x ^ (x >> np.uint64(31))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def _normal_pair(key_a: np.uint64, key_b: np.uint64, counter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent N(0, 1) arrays (Box-Muller) for the same counters."""
    radius = np.sqrt(-2.0 * np.log(_uniform(key_a, counter)))
    angle = _TWO_PI * _uniform(key_b, counter)
    return radius * np.cos(angle), radius * np.sin(angle)


def _log_vol(eta: np.ndarray, n: int) -> np.ndarray:
    """Truncated AR(1): h[d] = sum_j phi^j eta[d - j], for the last `n` entries of `eta`.

    Written as a fixed sequence of element-wise ops so each value is bit-identical however the block
    is laid out.
    """
    h = np.zeros(n)
    for lag in range(VOL_LAGS):
        h += VOL_PHI**lag * eta[VOL_LAGS - 1 - lag : VOL_LAGS - 1 - lag + n]
    return h


def _smooth_rows(noise: np.ndarray, phi: float) -> np.ndarray:
    """Stationary AR(1) along each row (unit variance): y_i = phi y_(i-1) + sqrt(1-phi^2) n_i."""
    n = noise.shape[1]
    powers = phi ** np.arange(n)
    scaled = noise * np.sqrt(1.0 - phi * phi)
    scaled[:, 0] = noise[:, 0]
    return powers * np.cumsum(scaled / powers, axis=1)


def _bridge(z: np.ndarray, weights: np.ndarray, daily_vol: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Gaussian increments with variances vol^2 * w_i conditioned to sum to `total` (per row)."""
    eps = np.sqrt(weights) * daily_vol[:, None] * z
    return eps - weights * (eps.sum(axis=1) - total)[:, None]


def _hour_profile(amplitude: float, peak_hour: float = 15.0) -> np.ndarray:
    hours = (np.arange(SLOTS_PER_DAY) + 0.5) * (24.0 / SLOTS_PER_DAY)
    return 1.0 + amplitude * np.cos(_TWO_PI * (hours - peak_hour) / 24.0)


_PRICE_SEASON = _hour_profile(0.35)
_VOLUME_SEASON = _hour_profile(0.6)


class _Streams:
    """Per-name stream keys and constant parameters (beta, base price, ...)."""

    def __init__(self, seed: int, name: str) -> None:
        names = ["da", "db", "za", "zb", "ha", "hb", "va", "vb", "gap", "out_p", "out_s", "out_l", "params"]
        k = {s: _key(seed, name, s) for s in names}
        self.keys = k
        u = _uniform(k["params"], np.arange(4))
        self.beta = 0.6 + 0.8 * u[0]
        self.idio_vol = 0.012 + 0.025 * u[1]
        self.log_price0 = np.log(0.01) + u[2] * (np.log(1000.0) - np.log(0.01))
        self.quote_volume = np.exp(np.log(5e3) + u[3] * (np.log(5e6) - np.log(5e3)))  # per 5m, quote


class _DailyBlock:
    """Daily quantities for BLOCK_DAYS days: vol regime, daily log return and (symbols) anchors."""

    __slots__ = ("vol", "ret", "anchor")

    def __init__(self, vol: np.ndarray, ret: np.ndarray, anchor: np.ndarray | None = None) -> None:
        self.vol, self.ret, self.anchor = vol, ret, anchor


class SyntheticProvider(MarketDataProvider):
    """Deterministic, clearly labelled synthetic 5m candles for any symbol (see module docstring)."""

    kind = "synthetic"
    synthetic = True

    def __init__(
        self,
        seed: int = 0,
        gap_probability: float = 0.002,
        outage_probability: float = 0.01,
        clock: Clock | None = None,
    ) -> None:
        if not 0.0 <= gap_probability < 1.0 or not 0.0 <= outage_probability <= 1.0:
            raise ValueError("gap_probability must be in [0, 1) and outage_probability in [0, 1]")
        self.seed = int(seed)
        self.gap_probability = float(gap_probability)
        self.outage_probability = float(outage_probability)
        self._clock = clock
        self._streams: dict[str, _Streams] = {}
        self._market_blocks: dict[int, _DailyBlock] = {}
        self._symbol_blocks: dict[tuple[str, int], _DailyBlock] = {}

    @property
    def exchange(self) -> str:
        return "synthetic"

    def describe(self) -> str:
        return f"synthetic:synthetic (SYNTHETIC, seed={self.seed}, gap_probability={self.gap_probability})"

    # -- public --------------------------------------------------------------------------------------
    def fetch_ohlcv(
        self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, *, now: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        start_ms, end_ms = to_ms(start), to_ms(end)
        now_ms = resolve_now(now, self._clock)
        hi_ms = min(end_ms, now_ms)
        if hi_ms <= start_ms:
            df = empty_candles()
            df["source"] = pd.Series([], dtype=object)
        else:
            first_day = start_ms // DAY_MS
            last_day = -(-hi_ms // DAY_MS)  # exclusive
            df = self.generate_days(symbol, first_day, last_day)
            ts = df.pop("_ms").to_numpy()
            keep = (ts >= start_ms) & (ts < end_ms) & (ts + BASE_MS <= now_ms)
            if not keep.all():
                df = df.loc[keep].reset_index(drop=True)
            df = validate_candles(df, symbol, coerce=False)
        # every hole is by design: the generator demonstrably has no candle there
        why = "the synthetic market has no candle there (a simulated gap or outage)"
        df.attrs[COVERAGE_ATTR] = build_coverage(
            df, symbol=symbol, source=self.describe(), start_ms=start_ms, end_ms=end_ms, now_ms=now_ms,
            confirmed=[(start_ms - BASE_MS, max(end_ms, start_ms), why)],
        )  # fmt: skip
        return df

    def generate_days(self, symbol: str, first_day: int, last_day: int) -> pd.DataFrame:
        """All candles (minus gaps) of UTC days [first_day, last_day) (days since 1970-01-01), with an
        extra `_ms` column of open times in epoch ms. No clock applied: callers slice."""
        days = np.arange(first_day, last_day, dtype=np.int64)
        o, h, lo, c, v, present = self._day_matrix(symbol, days)
        slot = (days[:, None] * SLOTS_PER_DAY + np.arange(SLOTS_PER_DAY)[None, :])[present]
        ms = slot * BASE_MS
        return pd.DataFrame(
            {
                "timestamp": ms_index(ms),
                "open": o[present],
                "high": h[present],
                "low": lo[present],
                "close": c[present],
                "volume": v[present],
                "source": "synthetic",
                "_ms": ms,
            }
        )

    # -- daily level ---------------------------------------------------------------------------------
    def _stream(self, name: str) -> _Streams:
        st = self._streams.get(name)
        if st is None:
            st = self._streams[name] = _Streams(self.seed, name)
        return st

    def _daily_shocks(self, st: _Streams, block: int) -> tuple[np.ndarray, np.ndarray]:
        """(log-vol h, return shock z) for the days of `block`."""
        d0 = EPOCH_DAY + block * BLOCK_DAYS
        days = np.arange(d0 - VOL_LAGS + 1, d0 + BLOCK_DAYS, dtype=np.int64)
        eta, z = _normal_pair(st.keys["da"], st.keys["db"], days)
        return _log_vol(eta, BLOCK_DAYS), z[VOL_LAGS - 1 :]

    def _market_block(self, block: int) -> _DailyBlock:
        blk = self._market_blocks.get(block)
        if blk is None:
            h, z = self._daily_shocks(self._stream(_MARKET), block)
            eta_std = MARKET_LOGVOL_STD * np.sqrt(1.0 - VOL_PHI**2)
            vol = MARKET_DAILY_VOL * np.exp(eta_std * h)
            blk = self._market_blocks[block] = _DailyBlock(vol, vol * z)
        return blk

    def _symbol_block(self, symbol: str, block: int) -> _DailyBlock:
        cached = self._symbol_blocks.get((symbol, block))
        if cached is not None:
            return cached
        st = self._stream(symbol)
        h, z = self._daily_shocks(st, block)
        vol = st.idio_vol * np.exp(IDIO_LOGVOL_STD * np.sqrt(1.0 - VOL_PHI**2) * h)
        ret = vol * z
        total = st.beta * self._market_block(block).ret + ret  # symbol's daily log return
        anchor = np.empty(BLOCK_DAYS + 1)  # log price at the start of each day, plus the block end
        if block >= 0:
            start = st.log_price0 if block == 0 else self._symbol_block(symbol, block - 1).anchor[-1]
            anchor[0] = start
            anchor[1:] = start + np.cumsum(total)
        else:
            end = self._symbol_block(symbol, block + 1).anchor[0]
            anchor[-1] = end
            anchor[:-1] = end - np.cumsum(total[::-1])[::-1]
        blk = self._symbol_blocks[(symbol, block)] = _DailyBlock(vol, ret, anchor)
        return blk

    def _daily(self, symbol: str, days: np.ndarray) -> dict[str, np.ndarray]:
        """Gather per-day values (anchor, vols, returns) for arbitrary days from the cached blocks."""
        rel = days - EPOCH_DAY
        blocks = rel // BLOCK_DAYS
        idx = rel - blocks * BLOCK_DAYS
        out = {k: np.empty(len(days)) for k in ("anchor", "m_vol", "m_ret", "i_vol", "i_ret")}
        for b in np.unique(blocks):
            sel = blocks == b
            mb, sb = self._market_block(int(b)), self._symbol_block(symbol, int(b))
            out["anchor"][sel] = sb.anchor[idx[sel]]
            out["m_vol"][sel], out["m_ret"][sel] = mb.vol[idx[sel]], mb.ret[idx[sel]]
            out["i_vol"][sel], out["i_ret"][sel] = sb.vol[idx[sel]], sb.ret[idx[sel]]
        return out

    # -- intraday level ------------------------------------------------------------------------------
    def _day_matrix(self, symbol: str, days: np.ndarray) -> tuple[np.ndarray, ...]:
        st, mk = self._stream(symbol), self._stream(_MARKET)
        daily = self._daily(symbol, days)
        slots = days[:, None] * SLOTS_PER_DAY + np.arange(SLOTS_PER_DAY)[None, :]

        # market intraday increments (shared by every symbol) and idiosyncratic ones, each a bridge
        m_z, m_burst = _normal_pair(mk.keys["za"], mk.keys["zb"], slots)
        i_z, i_burst = _normal_pair(st.keys["za"], st.keys["zb"], slots)
        m_w = _weights(_PRICE_SEASON * np.exp(0.5 * _smooth_rows(m_burst, INTRADAY_PHI)))
        i_w = _weights(_PRICE_SEASON * np.exp(0.5 * _smooth_rows(i_burst, INTRADAY_PHI)))
        m_inc = _bridge(m_z, m_w, daily["m_vol"], daily["m_ret"])
        i_inc = _bridge(i_z, i_w, daily["i_vol"], daily["i_ret"])
        x = st.beta * m_inc + i_inc

        log_close = daily["anchor"][:, None] + np.cumsum(x, axis=1)
        close = np.exp(log_close)
        open_ = np.exp(log_close - x)
        sigma = np.sqrt(st.beta**2 * m_w * daily["m_vol"][:, None] ** 2 + i_w * daily["i_vol"][:, None] ** 2)

        z_hi, z_lo = _normal_pair(st.keys["ha"], st.keys["hb"], slots)
        high = np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(z_hi))
        low = np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(z_lo))

        z_vol, _ = _normal_pair(st.keys["va"], st.keys["vb"], slots)
        typical = np.sqrt(1.0 / SLOTS_PER_DAY) * np.hypot(st.beta * MARKET_DAILY_VOL, st.idio_vol)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        weekly = np.where(weekday >= 5, 0.7, 1.0)[:, None]
        activity = (sigma / typical) ** 0.7 * (0.6 + 0.5 * np.abs(x) / sigma)
        volume = (st.quote_volume / np.exp(st.log_price0)) * _VOLUME_SEASON * weekly * activity
        volume = volume * np.exp(0.35 * z_vol)

        present = self._present(st, days, slots)
        return open_, high, low, close, volume, present

    def _present(self, st: _Streams, days: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """False where a candle is missing: isolated gaps plus at most one outage (6-47 slots) a day."""
        present = _uniform(st.keys["gap"], slots) >= self.gap_probability
        outage = _uniform(st.keys["out_p"], days) < self.outage_probability
        if outage.any():
            first = np.floor(_uniform(st.keys["out_s"], days) * SLOTS_PER_DAY).astype(np.int64)
            length = 6 + np.floor(_uniform(st.keys["out_l"], days) * 42).astype(np.int64)
            pos = np.arange(SLOTS_PER_DAY)[None, :]
            down = outage[:, None] & (pos >= first[:, None]) & (pos < (first + length)[:, None])
            present &= ~down
        return present


def _weights(raw: np.ndarray) -> np.ndarray:
    return raw / raw.sum(axis=1, keepdims=True)
