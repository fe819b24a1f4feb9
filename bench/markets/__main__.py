"""``python -m bench.markets``: bench/markets/run.py measures, report.py writes it out."""

from bench.markets.report import main

if __name__ == "__main__":
    raise SystemExit(main())
