"""viocli's NFS client: stream files to and from an operator's ``host:/export`` volume without mounting it.

The OMS may have no kernel NFS client (the lab's kernel has none), so viocli speaks NFSv4 over TCP from user
space through libnfs, bound with ctypes to ``libnfs.so.13`` (Debian 12's libnfs 4.0). Everything but WRITE
uses libnfs's synchronous API; WRITEs are pipelined through its async API (see :class:`_WritePipeline`).
ctypes releases the GIL during libnfs calls, so a producer thread (a database dump) can fill the stream
while a call waits on the network.

Writes stream: a backup is read from ``source`` a block at a time and never staged whole on the OMS disk or
in memory. It goes to a temporary name beside the final one (``.NAME.partial-XXXXXXXX``), is committed
(COMMIT), then renamed, so a failed or interrupted backup never looks complete.

libnfs 4.0 quirks handled here:

- no ``nfs_set_nfsport``: the port (and the version) are set through its URL-argument parser;
- its NFSv4 WRITE is encoded into a fixed 4 KiB buffer, so a WRITE above about 3.9 KiB fails locally
  ("Failed to encode COMPOUND4args") before anything is sent: the client starts with large WRITEs and
  shrinks them on that error (a fixed libnfs keeps large ones), and keeps many WRITEs in flight so the
  stream is not bound by one round trip per 3.9 KiB;
- its last error message is kept until the next error, so the client clears it before each call;
- its directory cache would list stale names: it is turned off;
- on NFSv4, ``nfs_unlink`` also removes directories, so :meth:`NfsVolume.remove` checks the type first;
- a sync call that times out returns EINTR ("Command timed out").
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import ipaddress
import itertools
import os
import re
import secrets
import select
import socket
import stat
import threading
import time
import weakref
from typing import BinaryIO

from viocli.errors import BadInput, OperationFailed

DEFAULT_PORT = 2049
DEFAULT_TIMEOUT = 60.0
LIBRARY = "libnfs.so.13"
NFS_V4 = 4
IO_SIZE = 1 << 20  # bytes read from the source, and from the server, per call
WRITE_START = 1 << 20  # first WRITE size tried on a connection
WRITE_LIBNFS4 = 3968  # libnfs 4.0's NFSv4 WRITE must fit its 4 KiB encode buffer with the RPC header
WRITE_STEP = 32
WRITE_MIN = 1024
WINDOW = 64  # WRITEs in flight at once: the stream is bound by bandwidth, not by round trips
WINDOW_BYTES = 8 << 20
POLL_MS = 200
PARTIAL_MARK = ".partial-"
ENCODE_FAILURE = "Failed to encode"
TRANSPORT_ERRNOS = {
    errno.EINTR,
    errno.EIO,
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.EPIPE,
    errno.ENOTCONN,
    errno.ECONNREFUSED,
}

HINT_REACH = (
    "is the export reachable from the OMS? check the host name, that an NFSv4 server listens on TCP port {port} "
    "there, and any firewall between them"
)
HINT_SQUASH = (
    "the export likely squashes root: export it with no_root_squash (and read-write) to the OMS address; "
    "viocli writes backups as root"
)
HINT_EXPORT = "the server exports no {path} over NFSv4: check the export path (for NFSv4, the server's pseudo path)"
HINT_DENIED = "the server refuses this client: export the volume read-write to the OMS address with no_root_squash"
HINT_FULL = "the NFS volume is full (or over quota): free space on it or use another volume"
HINT_TRANSPORT = "the connection to the NFS server failed: is the server still up and reachable from the OMS?"
HINT_INSTALL = "install the Debian package libnfs13 (libnfs 4.0) on the OMS"

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


_STAT64_FIELDS = (
    *("dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks"),
    *("atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec", "used"),
)


class _Stat64(ctypes.Structure):
    """libnfs's ``struct nfs_stat_64`` (all fields 64-bit), with room for fields added by later versions."""

    _fields_ = [(name, ctypes.c_uint64) for name in _STAT64_FIELDS] + [("_spare", ctypes.c_uint64 * 16)]


_STATVFS64_FIELDS = (
    *("bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail", "fsid", "flag", "namemax"),
)


class _Statvfs64(ctypes.Structure):
    """libnfs's ``struct nfs_statvfs_64`` (all fields 64-bit)."""

    _fields_ = [(name, ctypes.c_uint64) for name in _STATVFS64_FIELDS] + [("_spare", ctypes.c_uint64 * 8)]


class _Dirent(ctypes.Structure):
    """The leading fields of libnfs's ``struct nfsdirent`` (only these are read; libnfs owns the memory)."""


_Dirent._fields_ = [
    ("next", ctypes.POINTER(_Dirent)),
    ("name", ctypes.c_char_p),
    ("inode", ctypes.c_uint64),
    ("type", ctypes.c_uint32),
    ("mode", ctypes.c_uint32),
    ("size", ctypes.c_uint64),
]


_NfsCallback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


@functools.cache
def _libnfs() -> ctypes.CDLL:
    """Load libnfs and declare the functions this module calls (their libnfs 4.0 signatures)."""
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as error:
        raise OperationFailed(f"NFS: cannot load {LIBRARY}: {error}", hint=HINT_INSTALL) from None
    vp, cp, ci, u64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint64
    signatures: dict[str, tuple[list[type], type | None]] = {
        "nfs_init_context": ([], vp),
        "nfs_destroy_context": ([vp], None),
        "nfs_get_error": ([vp], cp),
        "nfs_set_error": ([vp, cp], None),  # variadic in C; called with a format that has no conversions
        "nfs_set_timeout": ([vp, ci], None),
        "nfs_set_version": ([vp, ci], ci),
        "nfs_set_dircache": ([vp, ci], None),
        "nfs_parse_url_dir": ([vp, cp], vp),
        "nfs_destroy_url": ([vp], None),
        "nfs_mount": ([vp, cp, cp], ci),
        "nfs_create": ([vp, cp, ci, ci, ctypes.POINTER(vp)], ci),
        "nfs_open": ([vp, cp, ci, ctypes.POINTER(vp)], ci),
        "nfs_pwrite_async": ([vp, vp, u64, u64, vp, _NfsCallback, vp], ci),
        "nfs_get_fd": ([vp], ci),
        "nfs_which_events": ([vp], ci),
        "nfs_service": ([vp, ci], ci),
        "nfs_read": ([vp, vp, u64, vp], ci),
        "nfs_fsync": ([vp, vp], ci),
        "nfs_close": ([vp, vp], ci),
        "nfs_stat64": ([vp, cp, ctypes.POINTER(_Stat64)], ci),
        "nfs_statvfs64": ([vp, cp, ctypes.POINTER(_Statvfs64)], ci),
        "nfs_opendir": ([vp, cp, ctypes.POINTER(vp)], ci),
        "nfs_readdir": ([vp, vp], ctypes.POINTER(_Dirent)),
        "nfs_closedir": ([vp, vp], None),
        "nfs_mkdir": ([vp, cp], ci),
        "nfs_rmdir": ([vp, cp], ci),
        "nfs_unlink": ([vp, cp], ci),
        "nfs_rename": ([vp, cp, cp], ci),
    }
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = restype
    return lib


def _destroy_context(context: int) -> None:
    """Free a libnfs context (closing its connection)."""
    _libnfs().nfs_destroy_context(context)


def _valid_host(host: str) -> bool:
    """A host name, an IPv4 address or an IPv6 address."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


class NfsVolume:
    """An NFS volume ``host:/export[/sub]`` reached over NFSv4 (TCP) through libnfs, without mounting.

    The connection is opened on first use and kept until :meth:`close` (or the end of a ``with`` block);
    after a transport failure the next operation reconnects. Paths are relative to the volume (a leading
    ``/`` means the volume's root). One volume object serializes its operations; use one per thread to
    run them in parallel. Every failure raises :class:`~viocli.errors.OperationFailed` naming the volume,
    the path and the operation, with a hint.
    """

    def __init__(self, host: str, path: str, port: int = DEFAULT_PORT, *, timeout: float = DEFAULT_TIMEOUT):
        spec = f"{host}:{path}"
        if not host or not _valid_host(host):
            raise BadInput(f"NFS volume {spec!r}: {host!r} is not a host name or IP address")
        if not path.startswith("/") or any(ord(ch) < 32 for ch in path) or "?" in path or "#" in path:
            raise BadInput(f"NFS volume {spec!r}: the export must be an absolute path like /export/backups")
        parts = [part for part in path.split("/") if part]
        if any(part in (".", "..") for part in parts):
            raise BadInput(f"NFS volume {spec!r}: the export path may not contain '.' or '..'")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise BadInput(f"NFS volume {spec!r}: port {port!r} is out of range")
        if timeout <= 0:
            raise BadInput(f"NFS volume {spec!r}: timeout must be positive")
        self.host = host
        self.path = "/" + "/".join(parts)
        self.port = port
        self.timeout = float(timeout)
        self._lock = threading.RLock()
        self._context: int | None = None
        self._finalizer: weakref.finalize | None = None
        self._write_size = WRITE_START

    @classmethod
    def parse(cls, spec: str, port: int = DEFAULT_PORT, *, timeout: float = DEFAULT_TIMEOUT) -> NfsVolume:
        """Parse ``host:/export[/sub]`` (an IPv6 host in brackets: ``[fd00::1]:/export``); BadInput if malformed."""
        text = spec.strip() if isinstance(spec, str) else ""
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]:")
            if not sep or ":" not in host:
                raise BadInput(f"NFS volume {spec!r}: expected [IPv6]:/export", hint="e.g. [fd00::5]:/backups")
        else:
            host, sep, rest = text.partition(":")
            if not sep:
                raise BadInput(
                    f"NFS volume {spec!r}: expected HOST:/EXPORT",
                    hint="e.g. 192.0.2.10:/exports/vio or nfs.example.com:/backups/vio",
                )
        return cls(host, rest, port, timeout=timeout)

    @property
    def spec(self) -> str:
        """``host:/path`` as an operator writes it (with the port when it is not 2049)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        suffix = f" (port {self.port})" if self.port != DEFAULT_PORT else ""
        return f"{host}:{self.path}{suffix}"

    def __repr__(self) -> str:
        return f"NfsVolume({self.spec!r})"

    def __enter__(self) -> NfsVolume:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the next operation opens a new one)."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._finalizer = None
            self._context = None
            self._write_size = WRITE_START

    # -- connection and errors ------------------------------------------------------------------------

    def _fail(
        self, operation: str, path: str, reason: str, hint: str | None = None, cause: int | None = None
    ) -> OperationFailed:
        """The error for ``operation`` on ``path``; drop the connection after a transport failure."""
        if cause is not None and (cause in TRANSPORT_ERRNOS or "nfs_service failed" in reason):
            self.close()
            hint = hint or HINT_TRANSPORT
        where = f"{path} on {self.spec}" if path else self.spec
        return OperationFailed(f"NFS {operation} {where}: {reason}", hint=hint)

    def _reason(self, code: int) -> str:
        """``code`` (a negative errno from libnfs) as text, with libnfs's own message."""
        number = -code
        name = errno.errorcode.get(number, str(number))
        detail = ""
        if self._context is not None:
            raw = _libnfs().nfs_get_error(self._context)
            detail = raw.decode("utf-8", "replace") if raw else ""
        text = f"{os.strerror(number)} ({name})" if number > 0 else f"error {code}"
        return f"{text}: {detail}" if detail else text

    def _check(self, code: int, operation: str, path: str, hints: dict[int, str] | None = None) -> int:
        """Return ``code`` when it is not an error; raise the operation's error otherwise."""
        if code >= 0:
            return code
        number = -code
        raise self._fail(operation, path, self._reason(code), (hints or {}).get(number), cause=number)

    def _op(self, function: str, *args: object) -> int:
        """Call the libnfs ``function`` on the connected context, after clearing libnfs's last error message.

        libnfs keeps its last error message until the next error, so a message read after a failure is only
        that failure's when it was cleared first.
        """
        context = self._ctx()
        lib = _libnfs()
        lib.nfs_set_error(context, b"")
        return getattr(lib, function)(context, *args)

    def _ctx(self) -> int:
        """The connected libnfs context, connecting first when needed."""
        if self._context is not None:
            return self._context
        lib = _libnfs()
        hint = HINT_REACH.format(port=self.port)
        try:
            with socket.create_connection((self.host, self.port), timeout=min(self.timeout, 15.0)):
                pass
        except socket.gaierror as error:
            raise self._fail("connect", "", f"cannot resolve {self.host}: {error.strerror}", hint) from None
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            raise self._fail("connect", "", f"TCP port {self.port}: {reason}", hint) from None
        context = lib.nfs_init_context()
        if not context:
            raise self._fail("connect", "", "libnfs could not create a context")
        self._context = context
        self._finalizer = weakref.finalize(self, _destroy_context, context)
        lib.nfs_set_timeout(context, int(self.timeout * 1000))
        lib.nfs_set_dircache(context, 0)  # list what the server has now, not what libnfs saw before
        # libnfs 4.0 has no nfs_set_nfsport: the port is set by its URL-argument parser (server and path of
        # this URL are ignored; nfs_mount below gets the real ones).
        url = lib.nfs_parse_url_dir(context, f"nfs://localhost/?version={NFS_V4}&nfsport={self.port}".encode())
        if not url:
            self.close()
            raise self._fail("connect", "", "libnfs rejected the connection settings")
        lib.nfs_destroy_url(url)
        lib.nfs_set_version(context, NFS_V4)
        code = lib.nfs_mount(context, self.host.encode(), self.path.encode())
        if code < 0:
            reason = self._reason(code)
            self.close()
            hints = {errno.ENOENT: HINT_EXPORT.format(path=self.path), errno.EACCES: HINT_DENIED}
            hints[errno.EPERM] = HINT_DENIED
            raise self._fail("mount", "", reason, hints.get(-code, hint))
        return context

    def _remote(self, path: str, operation: str, *, root_ok: bool = False) -> str:
        """``path`` (relative to the volume) as the absolute path libnfs wants."""
        if not isinstance(path, str) or "\0" in path:
            raise BadInput(f"NFS {operation} {self.spec}: {path!r} is not a path")
        parts = [part for part in path.split("/") if part]
        if any(part in (".", "..") for part in parts):
            raise BadInput(f"NFS {operation} {self.spec}: {path!r} may not contain '.' or '..'")
        if not parts and not root_ok:
            raise BadInput(f"NFS {operation} {self.spec}: a file or directory name is needed")
        return "/" + "/".join(parts)

    def _stat(self, remote: str, operation: str) -> _Stat64 | None:
        """The attributes of ``remote``, or None when it does not exist."""
        result = _Stat64()
        code = self._op("nfs_stat64", remote.encode(), ctypes.byref(result))
        if code == -errno.ENOENT:
            return None
        self._check(code, operation, remote)
        return result

    # -- files -------------------------------------------------------------------------------------------

    def write_stream(self, name: str, source: BinaryIO, *, overwrite: bool = False) -> int:
        """Stream ``source`` to ``name`` on the volume; return the number of bytes written.

        The data goes to a temporary name in the same directory, is committed to stable storage, and is
        renamed to ``name`` only when everything succeeded; on any failure (the source raising included)
        the temporary file is removed and ``name`` is left as it was. ``name`` must not exist unless
        ``overwrite`` is set.
        """
        operation = "write"
        final = self._remote(name, operation)
        directory, _, base = final.rpartition("/")
        partial = f"{directory}/.{base}{PARTIAL_MARK}{secrets.token_hex(4)}"
        with self._lock:
            context = self._ctx()
            if not overwrite and self._stat(final, operation) is not None:
                raise self._fail(operation, final, "it already exists", "choose another name or remove it first")
            handle = ctypes.c_void_p()
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            code = self._op("nfs_create", partial.encode(), flags, 0o600, ctypes.byref(handle))
            if code < 0:
                reason = self._reason(code)
                hints = {errno.EACCES: HINT_SQUASH, errno.EPERM: HINT_SQUASH, errno.EROFS: HINT_DENIED}
                hints[errno.ENOENT] = f"the directory {directory or '/'} does not exist on the volume: mkdir it first"
                # libnfs's own ACCESS check (before OPEN) reports a refusal as EINVAL "Insufficient ACCESS".
                hint = HINT_SQUASH if "ACCESS" in reason else hints.get(-code)
                raise self._fail(operation, final, reason, hint, cause=-code)
            written = 0
            pipeline = _WritePipeline(self, context, handle, final)
            try:
                while True:
                    try:
                        data = source.read(IO_SIZE)
                    except Exception as error:
                        raise self._fail(
                            operation, final, f"reading the source failed after {written} bytes: {error}"
                        ) from error
                    if not data:
                        break
                    pipeline.write(written, bytes(data))
                    written += len(data)
                pipeline.drain()
                self._check(self._op("nfs_fsync", handle), operation, final, {errno.ENOSPC: HINT_FULL})
            except Exception:
                with contextlib.suppress(Exception):
                    if self._context is not None:
                        pipeline.settle()
                with contextlib.suppress(Exception):
                    if self._context is not None:
                        self._op("nfs_close", handle)
                        self._op("nfs_unlink", partial.encode())
                raise
            except BaseException:
                # Interrupted: drop the connection (and the WRITEs in flight); the partial file stays partial.
                pipeline.abandon()
                self.close()
                raise
            code = self._op("nfs_close", handle)
            if code >= 0:
                code = self._op("nfs_rename", partial.encode(), final.encode())
            if code < 0:
                reason = self._reason(code)
                with contextlib.suppress(Exception):
                    if self._context is not None:
                        self._op("nfs_unlink", partial.encode())
                raise self._fail(operation, final, reason, {errno.ENOSPC: HINT_FULL}.get(-code), cause=-code)
        return written

    def _shrink_write_size(self, failed: int) -> bool:
        """Make WRITEs smaller than ``failed`` bytes, which libnfs could not encode; False at the minimum."""
        if failed <= WRITE_MIN:
            return False
        smaller = WRITE_LIBNFS4 if failed > WRITE_LIBNFS4 else failed - WRITE_STEP
        self._write_size = max(WRITE_MIN, min(self._write_size, smaller))
        return True

    def read_stream(self, name: str, sink: BinaryIO) -> int:
        """Stream the file ``name`` from the volume into ``sink``; return the number of bytes read."""
        operation = "read"
        remote = self._remote(name, operation)
        buffer = bytearray(IO_SIZE)
        view = memoryview(buffer)
        address = ctypes.addressof((ctypes.c_char * IO_SIZE).from_buffer(buffer))
        total = 0
        with self._lock:
            self._ctx()
            handle = ctypes.c_void_p()
            hints = {errno.ENOENT: "no such file on the volume", errno.EACCES: HINT_SQUASH}
            self._check(
                self._op("nfs_open", remote.encode(), os.O_RDONLY, ctypes.byref(handle)), operation, remote, hints
            )
            try:
                while True:
                    count = self._check(self._op("nfs_read", handle, IO_SIZE, address), operation, remote)
                    if count == 0:
                        break
                    try:
                        sink.write(view[:count])
                    except Exception as error:
                        raise self._fail(
                            operation, remote, f"writing to the destination failed after {total} bytes: {error}"
                        ) from error
                    total += count
            finally:
                with contextlib.suppress(Exception):
                    if self._context is not None:
                        self._op("nfs_close", handle)
        return total

    # -- names ---------------------------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """True when ``path`` (a file or a directory) exists on the volume."""
        remote = self._remote(path, "stat", root_ok=True)
        with self._lock:
            return self._stat(remote, "stat") is not None

    def is_dir(self, path: str) -> bool:
        """True when ``path`` exists and is a directory."""
        remote = self._remote(path, "stat", root_ok=True)
        with self._lock:
            result = self._stat(remote, "stat")
        return result is not None and stat.S_ISDIR(result.mode)

    def free_bytes(self) -> int:
        """The bytes the export has free for an unprivileged writer (FSSTAT's available space)."""
        remote = self._remote("", "statvfs", root_ok=True)
        result = _Statvfs64()
        with self._lock:
            self._check(self._op("nfs_statvfs64", remote.encode(), ctypes.byref(result)), "statvfs", remote)
        return int(result.bavail) * int(result.frsize or result.bsize)

    def size(self, path: str) -> int:
        """The size in bytes of the file ``path``."""
        remote = self._remote(path, "stat")
        with self._lock:
            result = self._stat(remote, "stat")
        if result is None:
            raise self._fail("stat", remote, "no such file or directory")
        return int(result.size)

    def owner(self, path: str) -> int:
        """The numeric owner (uid) of ``path`` as the server stores it (a squashed root shows as nobody)."""
        remote = self._remote(path, "stat", root_ok=True)
        with self._lock:
            result = self._stat(remote, "stat")
        if result is None:
            raise self._fail("stat", remote, "no such file or directory")
        return int(result.uid)

    def rename(self, old: str, new: str) -> None:
        """Rename the file or directory ``old`` to ``new``, which must not exist (no replacing)."""
        operation = "rename"
        source = self._remote(old, operation)
        target = self._remote(new, operation)
        with self._lock:
            if self._stat(source, operation) is None:
                raise self._fail(operation, source, "no such file or directory")
            if self._stat(target, operation) is not None:
                raise self._fail(operation, target, "it already exists", "choose another name or remove it first")
            hints = {errno.EACCES: HINT_SQUASH, errno.EPERM: HINT_SQUASH, errno.ENOSPC: HINT_FULL}
            self._check(self._op("nfs_rename", source.encode(), target.encode()), operation, source, hints)

    def listdir(self, path: str = "") -> list[str]:
        """The names in directory ``path`` (the volume's root by default), sorted, without . and .."""
        operation = "list"
        remote = self._remote(path, operation, root_ok=True)
        lib = _libnfs()
        names: list[str] = []
        with self._lock:
            context = self._ctx()
            directory = ctypes.c_void_p()
            hints = {errno.ENOENT: "no such directory on the volume", errno.ENOTDIR: "it is a file"}
            self._check(self._op("nfs_opendir", remote.encode(), ctypes.byref(directory)), operation, remote, hints)
            try:
                while entry := lib.nfs_readdir(context, directory):
                    name = entry.contents.name.decode("utf-8", "surrogateescape")
                    if name not in (".", ".."):
                        names.append(name)
            finally:
                lib.nfs_closedir(context, directory)
        return sorted(names)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Create directory ``path``; with ``parents`` its missing parents too; ``exist_ok`` accepts an existing one."""
        operation = "mkdir"
        remote = self._remote(path, operation)
        parts = remote.strip("/").split("/")
        targets = ["/" + "/".join(parts[: index + 1]) for index in range(len(parts))] if parents else [remote]
        hints = {errno.EACCES: HINT_SQUASH, errno.EPERM: HINT_SQUASH, errno.ENOSPC: HINT_FULL}
        hints[errno.ENOENT] = "its parent directory does not exist (use parents)"
        hints[errno.EEXIST] = "it already exists"
        with self._lock:
            self._ctx()
            for target in targets:
                last = target == remote
                if not last or exist_ok:
                    existing = self._stat(target, operation)
                    if existing is not None:
                        if not stat.S_ISDIR(existing.mode):
                            raise self._fail(operation, target, "a file of that name exists")
                        continue
                self._check(self._op("nfs_mkdir", target.encode()), operation, target, hints)

    def remove(self, path: str, *, missing_ok: bool = False) -> None:
        """Remove the file ``path`` (not a directory: see :meth:`rmdir`)."""
        operation = "remove"
        remote = self._remote(path, operation)
        with self._lock:
            result = self._stat(remote, operation)
            if result is None:
                if missing_ok:
                    return
                raise self._fail(operation, remote, "no such file")
            if stat.S_ISDIR(result.mode):
                raise self._fail(operation, remote, "it is a directory", "use rmdir for directories")
            self._check(self._op("nfs_unlink", remote.encode()), operation, remote, {errno.EACCES: HINT_SQUASH})

    def rmdir(self, path: str) -> None:
        """Remove the empty directory ``path``."""
        operation = "rmdir"
        remote = self._remote(path, operation)
        with self._lock:
            result = self._stat(remote, operation)
            if result is None:
                raise self._fail(operation, remote, "no such directory")
            if not stat.S_ISDIR(result.mode):
                raise self._fail(operation, remote, "it is not a directory", "use remove for files")
            hints = {
                errno.ENOTEMPTY: "the directory is not empty: remove its contents first",
                errno.EACCES: HINT_SQUASH,
            }
            hints[errno.EEXIST] = hints[errno.ENOTEMPTY]
            self._check(self._op("nfs_rmdir", remote.encode()), operation, remote, hints)


# WRITEs in flight, by the key libnfs hands back to the callback: (pipeline, key, offset, count, address, block).
_IN_FLIGHT: dict[int, tuple[_WritePipeline, int, int, int, int, bytes]] = {}
_KEYS = itertools.count(1)


def _on_write(status: int, _context: int | None, data: int | None, private: int | None) -> None:
    """libnfs's completion callback for every pipelined WRITE (runs inside nfs_service, in the caller's thread)."""
    entry = _IN_FLIGHT.pop(private or 0, None)
    if entry is not None:
        entry[0].completed(entry, status, data)


_ON_WRITE = _NfsCallback(_on_write)  # module-level: it must outlive every context that may call it


class _WritePipeline:
    """Keep up to WINDOW WRITEs of one open file in flight through libnfs's async API.

    libnfs 4.0 caps an NFSv4 WRITE at about 3.9 KiB, so one WRITE at a time would make a stream wait a
    round trip per 3.9 KiB; a window of WRITEs in flight makes it bandwidth-bound. The bytes written are
    the caller's blocks, kept referenced until their WRITEs complete.
    """

    def __init__(self, volume: NfsVolume, context: int, handle: ctypes.c_void_p, path: str):
        self.volume = volume
        self.context = context
        self.handle = handle
        self.path = path
        self.keys: set[int] = set()
        self.bytes_in_flight = 0
        self.retries: list[tuple[int, int, int, bytes]] = []
        self.failure: tuple[int, str] | None = None
        self.last_progress = time.monotonic()

    def completed(self, entry: tuple[_WritePipeline, int, int, int, int, bytes], status: int, data: int | None) -> None:
        """Account for one finished WRITE: done, short (the rest is sent again) or failed."""
        _, key, offset, count, address, block = entry
        self.keys.discard(key)
        self.bytes_in_flight -= count
        self.last_progress = time.monotonic()
        if status < 0 or (status == 0 and count > 0):
            if self.failure is None:
                message = ctypes.string_at(data).decode("utf-8", "replace") if status < 0 and data else ""
                self.failure = (status or -errno.EIO, message or "the server accepted no bytes")
        elif status < count:
            self.retries.append((offset + status, count - status, address + status, block))

    def write(self, offset: int, block: bytes) -> None:
        """Queue all of ``block`` at ``offset`` (returns once it is queued, not once it is written)."""
        address = ctypes.cast(ctypes.c_char_p(block), ctypes.c_void_p).value or 0
        position = 0
        while position < len(block):
            self._raise_failure()
            if self.retries:
                self._queue(*self.retries.pop())
                continue
            if len(self.keys) >= WINDOW or self.bytes_in_flight >= WINDOW_BYTES:
                self._service()
                continue
            count = min(self.volume._write_size, len(block) - position)
            if self._queue(offset + position, count, address + position, block):
                position += count

    def drain(self) -> None:
        """Wait until every queued WRITE completed; raise the first failure."""
        while self.keys or self.retries:
            self._raise_failure()
            if self.retries:
                self._queue(*self.retries.pop())
            else:
                self._service()
        self._raise_failure()

    def settle(self) -> None:
        """After a failure: wait for the WRITEs still in flight to complete, sending nothing more."""
        self.retries.clear()
        while self.keys:
            self._service()

    def abandon(self) -> None:
        """Forget the WRITEs in flight (their connection is being dropped)."""
        for key in self.keys:
            _IN_FLIGHT.pop(key, None)
        self.keys.clear()
        self.retries.clear()

    def _queue(self, offset: int, count: int, address: int, block: bytes) -> bool:
        """Queue one WRITE; False when libnfs could not encode it and WRITEs were made smaller."""
        lib = _libnfs()
        key = next(_KEYS)
        _IN_FLIGHT[key] = (self, key, offset, count, address, block)
        lib.nfs_set_error(self.context, b"")
        code = lib.nfs_pwrite_async(self.context, self.handle, offset, count, address, _ON_WRITE, key)
        if code == 0:
            self.keys.add(key)
            self.bytes_in_flight += count
            return True
        _IN_FLIGHT.pop(key, None)
        detail = (lib.nfs_get_error(self.context) or b"").decode("utf-8", "replace")
        if ENCODE_FAILURE in detail and self.volume._shrink_write_size(count):
            return False  # nothing was sent: the same bytes go again in smaller WRITEs
        self.abandon()
        raise self.volume._fail("write", self.path, detail or "libnfs could not queue a WRITE", cause=errno.EIO)

    def _raise_failure(self) -> None:
        """Raise the first failed WRITE's error."""
        if self.failure is None:
            return
        status, message = self.failure
        number = -status
        name = errno.errorcode.get(number, str(number))
        reason = f"{os.strerror(number)} ({name}): {message}"
        hints = {errno.ENOSPC: HINT_FULL, errno.EDQUOT: HINT_FULL, errno.EACCES: HINT_SQUASH, errno.EPERM: HINT_SQUASH}
        if number in TRANSPORT_ERRNOS:
            self.abandon()
        raise self.volume._fail("write", self.path, reason, hints.get(number), cause=number)

    def _service(self) -> None:
        """Wait for the connection to be ready (at most POLL_MS) and let libnfs send and receive."""
        lib = _libnfs()
        poller = select.poll()
        poller.register(lib.nfs_get_fd(self.context), lib.nfs_which_events(self.context))
        ready = poller.poll(POLL_MS)
        lib.nfs_set_error(self.context, b"")
        if lib.nfs_service(self.context, ready[0][1] if ready else 0) < 0:
            detail = (lib.nfs_get_error(self.context) or b"").decode("utf-8", "replace")
            self.abandon()
            raise self.volume._fail("write", self.path, detail or "the connection failed", cause=errno.EIO)
        if self.keys and time.monotonic() - self.last_progress > self.volume.timeout:
            self.abandon()
            reason = f"no reply from the server for {self.volume.timeout:g}s"
            raise self.volume._fail("write", self.path, reason, cause=errno.ETIMEDOUT)
