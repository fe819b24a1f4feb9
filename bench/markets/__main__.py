"""``python -m bench.markets``: see bench/markets/run.py."""

from bench.markets.run import main

if __name__ == "__main__":
    raise SystemExit(main())
