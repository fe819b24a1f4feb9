"""``python -m replay --tune``: the tuning table of docs/replay.md."""

from alphad.replay.tuning import main

raise SystemExit(main())
