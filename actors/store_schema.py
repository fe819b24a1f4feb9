"""The store's schema: its migrations, the pragmas it runs with, and SQLite's own check
of the file before anything is written to it.

Functions of a ``sqlite3.Connection``, run on the database thread (actors/sqlite_thread.py).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import suppress
from pathlib import Path
from urllib.parse import quote

import msgspec

from alphad.actors.store_messages import StorageCorrupt

SCHEMA_VERSION = 7
# The tables every version of the schema has (`alphad check-db` looks for them).
ALPHAD_TABLES = frozenset(("trades", "signals", "signal_outcomes", "audit", "history", "snapshots"))

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE trades (
        seq INTEGER PRIMARY KEY,
        trade_id TEXT NOT NULL UNIQUE,
        strategy TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        pnl REAL NOT NULL,
        entry_ts_ms INTEGER NOT NULL,
        exit_ts_ms INTEGER NOT NULL,
        regime TEXT NOT NULL,
        size REAL,
        signal_id TEXT,
        recorded_ms INTEGER NOT NULL
    );
    CREATE INDEX trades_strategy ON trades (strategy, seq);
    CREATE TABLE signals (
        id INTEGER PRIMARY KEY,
        signal_id TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        strategy TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        confidence REAL NOT NULL,
        confluence INTEGER NOT NULL,
        regime TEXT,
        quality REAL NOT NULL,
        execute INTEGER NOT NULL,
        size_multiplier REAL NOT NULL,
        weight REAL NOT NULL,
        status TEXT NOT NULL,
        reasons TEXT NOT NULL
    );
    CREATE INDEX signals_signal_id ON signals (signal_id);
    CREATE TABLE signal_outcomes (
        seq INTEGER PRIMARY KEY,
        signal_id TEXT NOT NULL UNIQUE,
        success INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        strategy TEXT,
        old TEXT,
        new TEXT,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX audit_strategy ON audit (strategy, seq);
    CREATE TABLE history (
        cycle INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        state BLOB NOT NULL
    );
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        trade_seq INTEGER NOT NULL,
        outcome_seq INTEGER NOT NULL,
        audit_seq INTEGER NOT NULL,
        state BLOB NOT NULL
    );
    """,
    # The CRC-32 of each snapshot's state, so that a damaged one is known as such and the
    # start falls back to the one before (NULL: written before there were checksums).
    2: """
    ALTER TABLE snapshots ADD COLUMN checksum INTEGER;
    """,
    # Detected regimes: the reading at a trade's entry (a signal's time) beside the bot's
    # label in `regime`, and which of the two it counts under: 'detected' (the reading;
    # 'unknown' when there was none), 'bot' (the label), NULL (the bot's, none sent, or
    # recorded before this version).
    3: """
    ALTER TABLE trades ADD COLUMN detected_regime TEXT;
    ALTER TABLE trades ADD COLUMN regime_source TEXT;
    ALTER TABLE signals ADD COLUMN detected_regime TEXT;
    ALTER TABLE signals ADD COLUMN regime_source TEXT;
    """,
    # Compact history (actors/history_rows.py): a row holds what changed since the row
    # before and names its keyframe (NULL: a full state, as every row before this
    # version); full_bytes is the size of the full state (NULL: the row's own).
    4: """
    ALTER TABLE history ADD COLUMN keyframe INTEGER;
    ALTER TABLE history ADD COLUMN full_bytes INTEGER;
    """,
    # Each scored signal's place in the scorer's count (its ``scored`` once it was
    # scored; NULL: journaled before this version): a start takes the signals scored
    # after the snapshot it restores as pending again, so that their outcomes count.
    # Trades by signal: a signal's outcome is its first trade's when no
    # record_signal_outcome gave one (get_signals).
    5: """
    ALTER TABLE signals ADD COLUMN ordinal INTEGER;
    CREATE INDEX signals_ordinal ON signals (ordinal);
    CREATE INDEX trades_signal_id ON trades (signal_id, seq);
    """,
    # Where an outcome came (a trade's signal_id, a record_signal_outcome): whether the
    # scorer held the signal pending, and its count of scored signals then. A start
    # learns the outcomes at their place among the signals scored after the snapshot,
    # so that it forgets and learns what live did (NULL: recorded before this version,
    # learned after them, as before).
    6: """
    ALTER TABLE trades ADD COLUMN signal_pending INTEGER;
    ALTER TABLE trades ADD COLUMN signal_scored INTEGER;
    ALTER TABLE signal_outcomes ADD COLUMN pending INTEGER;
    ALTER TABLE signal_outcomes ADD COLUMN scored INTEGER;
    """,
    # No table changes: a snapshot's checksum covers its row's numbers (trade_seq, …)
    # from this version on, which an older alphad would read as a damaged snapshot; it
    # refuses the file as newer instead, and says to upgrade.
    7: "",
}


class Opened(msgspec.Struct, frozen=True, kw_only=True):
    """A database ready for writes: the schema versions migrated to on the way, and
    where each sequence stands."""

    migrated: list[int]
    last_trade_seq: int
    last_outcome_seq: int
    last_audit_seq: int
    trades: int


def prepare(
    db: sqlite3.Connection,
    path: Path,
    *,
    synchronous: str,
    busy_timeout_ms: int,
    checked: bool = False,
) -> Opened:
    """Check the file (``refuse_unusable``; not again when ``checked``), set the pragmas,
    migrate to ``SCHEMA_VERSION``."""
    if not checked:
        refuse_unusable(db, path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    db.execute("PRAGMA foreign_keys=ON")
    migrated = migrate(db, path)
    refuse_read_only(db, path)
    return Opened(
        migrated=migrated,
        last_trade_seq=scalar(db, "SELECT COALESCE(MAX(seq), 0) FROM trades"),
        last_outcome_seq=scalar(db, "SELECT COALESCE(MAX(seq), 0) FROM signal_outcomes"),
        last_audit_seq=scalar(db, "SELECT COALESCE(MAX(seq), 0) FROM audit"),
        trades=scalar(db, "SELECT COUNT(*) FROM trades"),
    )


def migrate(db: sqlite3.Connection, path: Path) -> list[int]:
    """Apply the migrations the file lacks, each in its own transaction; the versions
    applied. A file of a newer schema than this alphad's is refused."""
    version = refuse_newer(db, path)
    applied = []
    for target in range(version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[target]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={target}")
            db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk): the error that says
            # why is the one to raise, not the rollback's.
            if db.in_transaction:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        applied.append(target)
    return applied


def refuse_unusable(db: sqlite3.Connection, path: Path) -> None:
    """``StorageCorrupt`` if SQLite's quick check finds the file damaged, RuntimeError for
    a file of a newer alphad or of another program; reads only."""
    # Before anything writes: a corrupt file must not be written into (nor trades
    # acknowledged into it), and "storage ok" must mean what it says.
    problems = integrity_problems(db)
    if problems:
        raise StorageCorrupt(
            f"it fails PRAGMA quick_check ({problems[0]}); nothing was written to it:"
            f" restore a backup (alphad check-db runs the full check){stale_log_hint(path)}"
        )
    refuse_newer(db, path)
    refuse_foreign(db, path)


def stale_log_hint(path: Path) -> str:
    """What to add to a verdict of "damaged" when a write-ahead log is beside the file:
    SQLite reads the file through it, and a backup copied over a file a crash left with
    its log is read through the old file's log (and found damaged)."""
    log = Path(os.path.realpath(path) + "-wal")
    with suppress(OSError):
        if log.stat().st_size > 0:
            return (
                f"; if {path.name} was copied in from a backup, the log {log.name} beside it"
                " may be the old file's: move it and the -shm away"
            )
    return ""


def check_read_only(path: Path) -> bool:
    """``refuse_unusable`` on a read-only connection, before any connection that may write
    opens the file: the last connection to close a database in WAL mode copies its log
    into the file and deletes it, so a refusal through that one rewrote the file it said
    it left alone (and poured a stale log, left by a crash beside a file restored from a
    backup, into it). False when the file cannot be opened read-only (the writable
    connection checks it then)."""
    try:
        # The name's bytes, quoted: a file name need not be UTF-8 text.
        # No waiting on a lock here: a file another program holds is checked by the
        # writable connection, with busy_timeout_ms (twice the wait otherwise).
        db = sqlite3.connect(
            f"file:{quote(os.fsencode(path.absolute()))}?mode=ro", uri=True, timeout=0
        )
    except sqlite3.Error:
        return False
    try:
        try:
            refuse_unusable(db, path)
        except sqlite3.OperationalError:
            return False  # locked or unreadable here: the writable connection will say
        return True
    finally:
        db.close()


def refuse_newer(db: sqlite3.Connection, path: Path) -> int:
    """The file's schema version; RuntimeError for one newer than this alphad's."""
    version = scalar(db, "PRAGMA user_version")
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database {path} has schema version {version}, newer than this "
            f"alphad ({SCHEMA_VERSION}); upgrade alphad"
        )
    return version


def refuse_foreign(db: sqlite3.Connection, path: Path) -> None:
    """RuntimeError for another program's SQLite file, before anything is written to it:
    tables at schema version 0 (alphad's first migration sets version 1 with its tables,
    so any table at 0 is another program's, even one named ``trades``), or a version but
    none of alphad's tables. The migrations would add alphad's tables beside its own."""
    tables = sorted(
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    )
    version = scalar(db, "PRAGMA user_version")
    if tables and (version == 0 or not set(tables) & ALPHAD_TABLES):
        shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
        raise RuntimeError(
            f"{path} is not an alphad database (it holds tables {shown} of another"
            " program): give alphad a file of its own"
        )


def refuse_read_only(db: sqlite3.Connection, path: Path) -> None:
    """RuntimeError unless a write to the file can succeed: a file the daemon's user may
    read but not write (mode 0400, a read-only mount) would otherwise start, say
    "storage ok", and refuse every trade. The probe is rolled back: nothing stays."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS alphad_write_probe (x)")
        finally:
            db.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            # Not a permission: another program holds a write lock on it (a sqlite3 shell
            # inside a transaction, a long backup) for longer than [store] busy_timeout_ms.
            raise RuntimeError(
                f"the file is locked by another process ({exc}): end that process's"
                " transaction (or stop it) and start alphad again"
            ) from None
        raise RuntimeError(
            f"the file cannot be written ({exc}): give the daemon's user write access to"
            f" {path.name} and its directory"
        ) from None


def scalar(db: sqlite3.Connection, sql: str) -> int:
    """The first column of the first row (0 when there is none, or it is NULL)."""
    row = db.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def integrity_problems(db: sqlite3.Connection, *, full: bool = False) -> list[str]:
    """What SQLite finds wrong with the database, one problem a line; [] when it is sound.

    ``PRAGMA quick_check`` (the b-trees and pages, in time linear in the file), or with
    ``full`` ``PRAGMA integrity_check`` (also every index against its table).
    """
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = db.execute(f"PRAGMA {pragma}").fetchall()
    except sqlite3.OperationalError:
        raise  # locked, unreadable: not a verdict on the file's contents
    except sqlite3.DatabaseError as exc:  # "database disk image is malformed", "not a database"
        return [str(exc)]
    problems = [
        line
        for (text,) in rows
        for line in str(text).splitlines()
        if line and not line.startswith("***")
    ]
    return [] if problems == ["ok"] else problems


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
