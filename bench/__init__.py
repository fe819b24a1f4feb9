"""Benchmarks: alphad against the machine's own floor (python -m bench)."""
