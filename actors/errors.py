"""What the models refuse, in their own terms.

The models (here and the daemon's admission) raise these and never a wire error:
daemon/errors.py gives each its code for the ``error`` reply, in one table, and the
offline tools catch them directly. The text of one is the message the operator reads.
"""

from __future__ import annotations


class Refused(Exception):
    """A request a model does not carry out; nothing of it was taken."""


class BadInput(Refused):
    """Well formed, but not something the model can do: a status that does not exist, a
    batch of bars over the cap or out of order, a configured strategy to forget."""


class UnknownStrategy(Refused):
    """A strategy that is not configured, while ``auto_register`` is off."""


class LimitReached(Refused):
    """A new strategy, symbol, regime or series of bars would pass its configured cap."""


class NotFound(Refused):
    """The named strategy, signal or change of the weights does not exist."""


class Conflict(Refused):
    """A resend that differs from what is recorded."""
