"""Software-defined assets: `candles` (market data) and the research graph built on it."""
