"""``python -m daemon.replay --tune``, the old name of ``python -m replay --tune``."""

from alphad.replay.tuning import main

if __name__ == "__main__":
    raise SystemExit(main())
