"""``python -m bench``: see bench/suite.py."""

import multiprocessing

from bench.suite import main

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn", force=True)
    raise SystemExit(main())
