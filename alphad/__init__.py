"""alphad: the daemon, its actors, its wire protocol and its offline tools.

The folders ``protocol/``, ``actors/``, ``daemon/`` and ``replay/`` at the top of the
repository are installed as ``alphad.protocol``, ``alphad.actors``, ``alphad.daemon`` and
``alphad.replay``; the links beside this file make the source tree import them under the
same names, so tests and type checks see what a bot's environment sees, and nothing of
alphad takes a top-level name another distribution uses (``daemon`` is python-daemon's).
"""
