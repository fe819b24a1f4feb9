"""Offline tools: replay a history of signals through the daemon's own models, simulate, tune."""
