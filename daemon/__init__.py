"""The daemon: config, sockets, wiring, supervision, systemd integration and CLI."""
