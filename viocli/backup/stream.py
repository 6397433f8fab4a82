"""Stream a node's command output to a backup target, and a backup file back into a node's command.

Backup: the node's command (``mariabackup --stream``) writes to SSH; on the OMS the bytes are
compressed with zstd (multi-threaded, its own frame checksums), hashed with SHA-256 and written to the
target as they come: nothing is staged on the node's or the OMS's disk. Restore runs the same pipe the
other way (target -> zstd decompression -> SSH -> the node's command).

The SSH client is a child that dies with viocli, so a killed viocli never leaves a stream behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import zstandard

from viocli.atomic import CHUNK
from viocli.backup.manifest import HashingSink, StoredFile
from viocli.backup.target import BackupTarget
from viocli.children import die_with_viocli
from viocli.errors import OperationFailed

# zstd level 1: on InnoDB pages it compresses as well as level 3 (multi-threaded) at less CPU, which
# the OMS shares with SSH's decryption (bench/backup).
ZSTD_LEVEL = 1
ZSTD_THREADS = -1  # one compression worker per CPU
PREFETCH_CHUNKS = 16  # compressed chunks read ahead of the target's writes
STDERR_TAIL = 2000  # characters of a failed command's stderr kept for its message


class _Counting(io.RawIOBase):
    """A readable that counts (and optionally hashes) the bytes read through it."""

    def __init__(self, source: Any, *, hashed: bool = False):
        self.source = source
        self.size = 0
        self.digest = hashlib.sha256() if hashed else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        if not data:
            return 0
        count = len(data)
        buffer[:count] = data
        self.size += count
        if self.digest is not None:
            self.digest.update(data)
        return count

    def read(self, size: int = -1) -> bytes:  # the compressor and the target call read()
        data = self.source.read(size if size and size > 0 else CHUNK)
        self.size += len(data)
        if self.digest is not None:
            self.digest.update(data)
        return data


class _Prefetched(io.RawIOBase):
    """Reads ``source`` ahead in a thread of its own, so that decrypting SSH, compressing and hashing
    go on while the target writes what came before (zstd and the NFS client release the GIL).

    ``read`` returns whole chunks as they were read; an error of the source is raised by ``read``.
    """

    def __init__(self, source: Any, chunk: int = CHUNK, depth: int = PREFETCH_CHUNKS):
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._fill, args=(source, chunk), name="backup-prefetch", daemon=True)
        self._thread.start()

    def _fill(self, source: Any, chunk: int) -> None:
        try:
            while not self._stop.is_set():
                data = source.read(chunk)
                self._put(data)
                if not data:
                    return
        except BaseException as error:  # handed to the reader, which raises it
            self._put(error)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if not item:
            self._done = True
        return item

    def close(self) -> None:
        """Stop reading ahead (the source is closed by its owner)."""
        self._stop.set()
        self._thread.join(timeout=5)
        super().close()


@dataclass
class StreamResult:
    """A file stored from a stream, and how long the stream took."""

    stored: StoredFile
    seconds: float


def _stderr_tail(stderr: IO[bytes]) -> str:
    text = _stderr_text(stderr)[-STDERR_TAIL:]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _stderr_text(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    return stderr.read().decode("utf-8", "replace")


def _ended(process: subprocess.Popen[bytes], what: str, stderr: IO[bytes], log: Any) -> None:
    """Wait for ``process`` and log its stderr; OperationFailed with stderr's last line unless it exited 0."""
    try:
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if code != 0:
            reason = _stderr_tail(stderr) or f"exit status {code}"
            raise OperationFailed(f"{what} failed: {reason}")
    finally:
        if log is not None:
            log.debug("%s: stderr:\n%s", what, _stderr_text(stderr))


def node_to_target(argv: Sequence[str], target: BackupTarget, path: str, *, what: str, log: Any = None) -> StreamResult:
    """Run ``argv`` (an ssh command line) and store its stdout, zstd-compressed, as ``path`` on ``target``.

    OperationFailed when the command or the write fails; the file may then exist, incomplete (the
    caller's directory is not final yet). ``log`` receives the command's stderr at debug level.
    """
    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, preexec_fn=die_with_viocli()
        )
        assert process.stdout is not None
        raw = _Counting(process.stdout)
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=ZSTD_THREADS, write_checksum=True)
        stored = _Counting(compressor.stream_reader(raw, read_size=CHUNK, closefd=False), hashed=True)
        ahead = _Prefetched(stored)
        try:
            size = target.write_stream(path, ahead)  # type: ignore[arg-type]
        except BaseException:
            process.kill()
            with contextlib.suppress(OperationFailed):
                _ended(process, what, stderr, log)
            raise
        finally:
            ahead.close()
            process.stdout.close()
        _ended(process, what, stderr, log)
    assert stored.digest is not None
    result = StoredFile(path.rsplit("/", 1)[-1], size, stored.digest.hexdigest(), raw_size=raw.size)
    return StreamResult(result, time.monotonic() - started)


def target_to_node(
    target: BackupTarget, path: str, argv: Sequence[str], *, what: str, expect: StoredFile, log: Any = None
) -> StreamResult:
    """Feed the zstd file ``path`` of ``target``, decompressed, to the stdin of ``argv`` (an ssh command).

    The stored bytes are hashed on the way and must match ``expect`` (the manifest's size and
    SHA-256); OperationFailed otherwise, or when the command fails.
    """
    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=die_with_viocli()
        )
        assert process.stdin is not None
        hashed, raw = HashingSink(), HashingSink(hashed=False)
        decompressor = zstandard.ZstdDecompressor().stream_writer(
            _Fanout(process.stdin, raw), write_size=CHUNK, closefd=False
        )
        failure: list[BaseException] = []
        try:
            target.read_stream(path, _Fanout(hashed, decompressor))
            decompressor.flush()
        except (BrokenPipeError, zstandard.ZstdError) as error:
            failure.append(error)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError, OSError):
                process.stdin.close()
        _ended(process, what, stderr, log)
        if failure:
            raise OperationFailed(f"{what} failed: {path} does not decompress: {failure[0]}")
    if hashed.size != expect.size or hashed.digest.hexdigest() != expect.sha256:
        raise OperationFailed(f"{what} failed: {path} read back differs from its manifest entry")
    return StreamResult(
        StoredFile(expect.name, hashed.size, expect.sha256, raw_size=raw.size), time.monotonic() - started
    )


class _Fanout(io.RawIOBase):
    """Writes each block to every sink."""

    def __init__(self, *sinks: Any):
        self.sinks = sinks

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        for sink in self.sinks:
            sink.write(data)
        return len(data)
