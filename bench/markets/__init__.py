"""alphad and its peers on real price histories: ``python -m bench.markets`` (docs/markets.md)."""
