"""The SQL store for candles and results (SQLAlchemy 2; SQLite by default, PostgreSQL in production).

    store = Store()            # $CRYPTO4H_DB_URL, else sqlite:///<repo>/data/crypto4h.db
    store.migrate()            # Alembic upgrade head, idempotent
    store.upsert_candles(df, exchange="binance", symbol="ETH/BTC", source="ccxt")
    frame = store.read_candles("binance", "ETH/BTC", start, end)   # engine frame, open time in [start, end)

Every write is one transaction: validation happens before anything is sent, and a failure anywhere
rolls the whole write back. See `models` for the schema conventions.
"""

from pipeline.store.candles import CandleStoreError
from pipeline.store.engine_url import ENV_VAR
from pipeline.store.runs import RequestAlreadyRecorded
from pipeline.store.store import Store, StoreOpenError, open_store

__all__ = ["ENV_VAR", "CandleStoreError", "RequestAlreadyRecorded", "Store", "StoreOpenError", "open_store"]
