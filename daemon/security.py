"""Who may reach the daemon: ipc sockets are guarded by file modes, tcp ones by CURVE keys.

The file modes only hold if the directories around them are the daemon's own: a
directory another user created first, or may write to, lets that user replace the
sockets (and answer bots with forged replies) or read the database. The daemon
therefore creates its directories itself, private, and refuses to start in one it
does not own or that others may write to.

A tcp:// endpoint is only served with a server key pair and a directory of the public
keys of the bots allowed in (ZeroMQ's ZAP handler checks every connection against it);
without them the daemon refuses to start. ``alphad keygen`` writes key pairs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import resource
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

import structlog
import zmq
from zmq.auth.thread import ThreadAuthenticator

from alphad.daemon.config import SecurityConfig
from alphad.protocol.curve import load_key_file, over_network

log = structlog.get_logger("alphad")


class SecurityError(Exception):
    """A directory, file or key the daemon cannot safely use; one line for the operator."""


# A directory of the daemon's is refused when these mode bits are set. In the runtime
# directory others may look (the sockets carry their own modes: rpc and alerts 0660,
# admin 0600) but no one else may create, rename or delete; the state directory may be
# entered by the group (systemd's StateDirectoryMode may say 0750) but by no one else.
RUNTIME_DIR_FORBIDDEN = 0o022
STATE_DIR_FORBIDDEN = 0o027
LOCK_NAME = "alphad.lock"


def secure_directory(path: Path, what: str, forbidden: int) -> None:
    """Create ``path`` private (0700) or check the existing one: a directory, the daemon
    user's own, with none of the ``forbidden`` mode bits, writable, in a parent that no
    other user can rename it in."""
    euid = os.geteuid()
    _check_parent(path, what, euid)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass  # checked below, never trusted as found
    except FileNotFoundError:
        try:
            os.makedirs(path.parent, 0o700, exist_ok=True)
            _check_parent(path, what, euid)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise SecurityError(f"cannot create {what} {path}: {_reason(exc, path)}") from None
    except OSError as exc:
        raise SecurityError(f"cannot create {what} {path}: {_reason(exc, path.parent)}") from None
    try:
        link = os.lstat(path)
        info = os.stat(path)
    except OSError as exc:
        raise SecurityError(f"cannot use {what} {path}: {exc.strerror}") from None
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (euid, 0):
        raise SecurityError(
            f"{what} {path} is a symbolic link owned by uid {link.st_uid}, who could point it "
            "elsewhere: use the real directory"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise SecurityError(f"{what} {path} is not a directory")
    if info.st_uid != euid:
        raise SecurityError(
            f"{what} {path} is owned by uid {info.st_uid}, not by the daemon's user "
            f"(uid {euid}): another user may have created it; remove it or choose another"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & forbidden:
        exposure = (
            "writable by other users, who could replace what is in it"
            if mode & 0o022
            else "readable by other users"
        )
        raise SecurityError(f"{what} {path} is {exposure} (mode {mode:04o}): chmod 700 {path}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise SecurityError(f"cannot write in {what} {path}: {_reason(None, path)}")


def _check_parent(path: Path, what: str, euid: int) -> None:
    parent = path.parent
    try:
        info = os.stat(parent)
    except FileNotFoundError:
        return  # created by the daemon itself, private
    except OSError as exc:
        raise SecurityError(f"cannot use {what} {path}: {exc.strerror} ({parent})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise SecurityError(f"cannot use {what} {path}: {parent} is not a directory")
    if info.st_uid not in (euid, 0):
        raise SecurityError(
            f"{what} {path} is in {parent}, owned by uid {info.st_uid}, who could replace it: "
            "choose a directory of the daemon's user or root"
        )
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise SecurityError(
            f"{what} {path} is in {parent}, which other users may write to and could "
            "replace it in: choose another place"
        )


def _reason(exc: OSError | None, where: Path) -> str:
    """Why the daemon cannot write in ``where``, in the operator's words."""
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    with contextlib.suppress(OSError):
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return f"{probe} is on a read-only file system"
    if exc is None or isinstance(exc, PermissionError):
        return f"{probe} is not writable by the daemon's user (uid {os.geteuid()})"
    return exc.strerror or str(exc)


def check_private_file(path: Path, what: str) -> None:
    """Refuse a file of the daemon's (the database) that is not its own or that others
    may read: trades and strategy figures are the trader's business."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SecurityError(f"cannot use {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecurityError(f"{what} {path} is not a regular file")
    euid = os.geteuid()
    if info.st_uid != euid:
        raise SecurityError(
            f"{what} {path} is owned by uid {info.st_uid}, not by the daemon's user (uid {euid})"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & STATE_DIR_FORBIDDEN:
        raise SecurityError(
            f"{what} {path} is open to other users (mode {mode:04o}): chmod 600 {path}"
        )


def lock_directory(path: Path, what: str) -> IO[str]:
    """Hold ``alphad.lock`` in ``path`` while the returned file is open (the kernel
    releases the lock when the process ends, however it ends)."""
    lock = path / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SecurityError(f"cannot write in {what} {path}: {_reason(exc, path)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise SecurityError(f"another alphad is running with {what} {path}{pid}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return os.fdopen(fd, "r+", encoding="utf-8")


def needs_curve(endpoints: list[str]) -> bool:
    """Whether any endpoint leaves the host's file permissions (tcp://, not ipc://)."""
    return any(over_network(e) for e in endpoints)


def load_server_keys(config: SecurityConfig) -> tuple[bytes, bytes]:
    """The server's CURVE key pair, and the clients' directory checked; one line if not."""
    if not config.curve_server_secret or not config.curve_clients_dir:
        raise SecurityError(
            "a tcp:// endpoint needs [security] curve_server_secret and curve_clients_dir "
            "(create keys with `alphad keygen`)"
        )
    clients = Path(config.curve_clients_dir)
    if not clients.is_dir():
        raise SecurityError(
            f"key `security.curve_clients_dir`: {config.curve_clients_dir} is not a directory"
        )
    if clients.stat().st_mode & 0o002:
        # Whoever may add a public key there lets that key's holder in.
        raise SecurityError(
            f"key `security.curve_clients_dir`: {clients} may be written by every user, who"
            f" could let any client in: chmod o-w {clients}"
        )
    client_keys(config.curve_clients_dir)  # a bad key file locked every client out
    secret_file = Path(config.curve_server_secret)
    with contextlib.suppress(OSError):  # unreadable: load_key_file says why
        if stat.S_IMODE(secret_file.stat().st_mode) & 0o007:
            raise SecurityError(
                f"key `security.curve_server_secret`: {secret_file} is readable by other"
                f" users, who could pose as this daemon: chmod 600 {secret_file}"
            )
    try:
        public, secret = load_key_file(config.curve_server_secret)
    except ValueError as exc:
        raise SecurityError(f"key `security.curve_server_secret`: {exc}") from None
    if secret is None:
        raise SecurityError(
            f"key `security.curve_server_secret`: {config.curve_server_secret} holds no secret key"
        )
    return public, secret


def key_files(directory: str) -> list[Path]:
    """The public key files (``*.key``, as ZeroMQ's loader takes them) in ``directory``."""
    return sorted(p for p in Path(directory).iterdir() if p.name.endswith(".key"))


def client_keys(directory: str) -> dict[bytes, bool]:
    """The public keys of the ``*.key`` files in ``directory`` (the bots let in), as
    ZeroMQ's authenticator takes them; ``SecurityError`` naming a file that holds none.

    ZeroMQ's own loader logs such a file and lets nobody in at all, every listed bot
    refused as unknown: one bad copy (an empty file) locked out every client."""
    try:
        files = key_files(directory)
    except OSError as exc:
        raise SecurityError(
            f"key `security.curve_clients_dir`: cannot read {directory}: {exc.strerror or exc}"
        ) from None
    keys: dict[bytes, bool] = {}
    for path in files:
        try:
            public, _ = load_key_file(str(path))
        except ValueError as exc:
            raise SecurityError(
                f"key `security.curve_clients_dir`: {exc}; remove it or write it again"
                " with `alphad keygen`"
            ) from None
        keys[public] = True
    return keys


# How often the daemon looks at the clients' directory for keys added, removed or changed.
CLIENTS_REFRESH_S = 5.0


class Curve:
    """The server's keys and the running ZAP authenticator."""

    def __init__(self, context: zmq.Context[Any], config: SecurityConfig) -> None:
        self.public, self.secret = load_server_keys(config)
        self.clients_dir = config.curve_clients_dir
        self.authenticator = ThreadAuthenticator(context)
        self.authenticator.start()
        self._seen = self._listing()
        self.authenticator.certs["*"] = client_keys(self.clients_dir)

    def _listing(self) -> tuple[tuple[str, int, int, int, int], ...] | None:
        """What a change to the clients' keys changes: each key file's name, inode, size,
        modification and change time (None when the directory cannot be read). The
        change time is the kernel's: a copy that keeps the size and sets the modification
        time back (``cp -p``, ``touch -r``) still moves it."""
        try:
            return tuple(
                (p.name, (st := p.stat()).st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                for p in key_files(self.clients_dir)
            )
        except OSError:
            return None

    def refresh(self) -> None:
        """Take the clients' keys again when a key file was added, removed or changed
        (a bot's key revoked takes effect within ``CLIENTS_REFRESH_S``); a directory that
        holds a bad key file keeps the keys as they were, said once in the log."""
        listing = self._listing()
        if listing == self._seen:
            return
        self._seen = listing
        try:
            keys = client_keys(self.clients_dir)
        except (SecurityError, OSError) as exc:
            log.error("curve_clients_not_reloaded", error=str(exc), kept=len(self.keys()))
            return
        self.authenticator.certs["*"] = keys
        log.info("curve_clients_reloaded", keys=len(keys))

    def keys(self) -> dict[bytes, bool]:
        """The public keys let in now."""
        return dict(self.authenticator.certs.get("*", {}))

    def serve(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE server (before it binds)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        self.authenticator.stop()


KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A key pair's name: a file name of its own, never a path (``../x`` wrote outside the
directory given) nor a hidden or an empty one."""


def keygen(directory: str, name: str, *, force: bool = False) -> tuple[str, str]:
    """Write NAME.key (public, to share) and NAME.key_secret (mode 0600) in ``directory``.

    An existing pair is kept unless ``force``: a replaced secret key locks out every
    peer that trusts the old public one. Each file is written whole beside its name and
    then put in place, the secret one created 0600 (ZeroMQ's own writer creates it with
    the umask's mode and narrows it afterwards, so it was readable by others meanwhile,
    and a full disk left half a key), the secret one first: a public key never names a
    secret that is not there.
    """
    if not KEY_NAME.fullmatch(name):
        raise SecurityError(
            f"key name {name!r}: 1 - 64 of `A-Z a-z 0-9 _ . -`, starting with a letter or a"
            " digit (the files are NAME.key and NAME.key_secret in the directory given)"
        )
    target = Path(directory)
    public, secret = target / f"{name}.key", target / f"{name}.key_secret"
    existing = [p for p in (public, secret) if p.exists() or p.is_symlink()]
    if existing and not force:
        raise SecurityError(_exists(existing[-1]))
    target.mkdir(parents=True, exist_ok=True)
    public_key, secret_key = zmq.curve_keypair()
    staged: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for path, text, mode in (
            (secret, _key_text("Secret", public_key, secret_key), 0o600),
            (public, _key_text("Public", public_key, None), 0o644),
        ):
            staged.append((_staged_key(path, text, mode), path))
        for new, path in staged:
            if force:
                os.replace(new, path)
            else:
                _place_new(new, path)
            placed.append(path)
    except FileExistsError as exc:
        _remove(placed)
        raise SecurityError(_exists(Path(exc.filename2 or exc.filename or secret))) from None
    finally:
        _remove([new for new, _ in staged])
    return str(public), str(secret)


def _exists(path: Path) -> str:
    return (
        f"{path} exists: replacing it locks out every peer that trusts its "
        "public key; pass --force to replace it"
    )


def _key_text(kind: str, public_key: bytes, secret_key: bytes | None) -> str:
    # The format of ZeroMQ's certificates, which ``zmq.auth.load_certificate`` reads.
    lines = [f"#   ZeroMQ CURVE {kind} Certificate, written by alphad keygen"]
    if secret_key is not None:
        lines.append("#   Keep this file private: whoever holds it is this peer.")
    lines += ["", "metadata", "curve", f'    public-key = "{public_key.decode()}"']
    if secret_key is not None:
        lines.append(f'    secret-key = "{secret_key.decode()}"')
    return "\n".join(lines) + "\n"


def _staged_key(path: Path, text: str, mode: int) -> Path:
    """``text`` written whole and synced to a new file beside ``path``, of ``mode``."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    staged = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def _place_new(staged: Path, path: Path) -> None:
    """Put ``staged`` in place at ``path`` unless something is there: a hard link never
    replaces a file made meanwhile; where the file system has none (FAT, some network
    and FUSE mounts), a rename after a last look."""
    try:
        os.link(staged, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        if path.exists() or path.is_symlink():
            raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
        os.replace(staged, path)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit; the (old, new) soft limit.

    Every connection to an ipc socket costs the daemon a file descriptor, and libzmq
    (4.3.5) aborts the whole process when an accept finds none left instead of refusing
    that one connection: at the usual soft limit of 1 024 a local flood of connections
    killed the daemon. The hard limit (systemd's LimitNOFILE) is the real bound; the soft
    one is only a default that nothing here needs lower.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        # The unit's SystemCallFilter refuses setrlimit: a drop-in with a soft limit below
        # the hard one (LimitNOFILE=16384:65536) is served at its soft limit, not refused.
        log.warning(
            "open_files_limit_not_raised",
            soft=soft,
            hard=hard,
            error=str(exc),
            hint="set LimitNOFILE to a single value (soft = hard)",
        )
        return soft, soft
    return soft, hard
