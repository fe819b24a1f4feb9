"""Actors: one per component, each a plain model fed from a bounded mailbox."""
