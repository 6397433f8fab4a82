"""The lab's NFS server: nfs-ganesha (userspace) exporting a directory over NFSv4 with no root squash.

This machine's kernel has no NFS server (nor client), so the lab runs nfs-ganesha with its VFS FSAL as a
child process. Everything it writes stays inside ``lab_dir``: its configuration, log, pid file, NFSv4
recovery directory and callback credential cache. It listens on one address (the lab's management bridge
address, or 127.0.0.1 in tests) and speaks NFSv4 over TCP only: no NLM, RQUOTA, MOUNT or UDP, so it needs
no rpcbind. It is stopped by its pid, never by name.

Known, harmless lines in ``ganesha.log``: "Cannot register NFS V4 on TCP" (no rpcbind, which NFSv4 does not
need), the callback channel's Kerberos keytab warnings, and "Missing RADOS URLs backend library". DBus is
absent on the lab host; its component is logged at FATAL only, so its warnings stay out of the log.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from viocli.errors import BadInput, OperationFailed, Refused
from viocli.lab import system

DEFAULT_PORT = 2049
DEFAULT_PSEUDO = "/vio_backup"
CONFIG_NAME = "ganesha.conf"
LOG_NAME = "ganesha.log"
PID_NAME = "ganesha.pid"
OUTPUT_NAME = "ganesha.out"
RECOVERY_DIR = "ganesha-recovery"
CCACHE_DIR = "ganesha-run"
READY_MARK = "NFS SERVER INITIALIZED"
GANESHA = "ganesha.nfsd"
PLUGIN = "libfsalvfs.so"
PLUGIN_DIRS = ("/usr/lib/x86_64-linux-gnu/ganesha", "/usr/lib/aarch64-linux-gnu/ganesha", "/usr/lib64/ganesha")
HINT_INSTALL = "install the Debian packages nfs-ganesha and nfs-ganesha-vfs"
SQUASH_OPTIONS = ("No_Root_Squash", "Root_Squash", "All_Squash")
ACCESS_TYPES = ("RW", "RO")

# Children started by this process: stop() reaps them so no zombie is left behind.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class NfsServerHandle:
    """A running lab NFS server: what the lab records to reach and stop it later."""

    pid: int
    bind_ip: str
    port: int
    pseudo: str
    export_dir: Path
    lab_dir: Path

    @property
    def export_spec(self) -> str:
        """The volume an operator would give viocli: ``bind_ip:/pseudo`` (port apart)."""
        host = f"[{self.bind_ip}]" if ":" in self.bind_ip else self.bind_ip
        return f"{host}:{self.pseudo}"

    @property
    def config_path(self) -> Path:
        """The ganesha configuration written by :func:`start`."""
        return self.lab_dir / CONFIG_NAME

    @property
    def log_path(self) -> Path:
        """ganesha's log file."""
        return self.lab_dir / LOG_NAME

    @property
    def pid_file(self) -> Path:
        """ganesha's pid file (removed by ganesha itself on a clean exit)."""
        return self.lab_dir / PID_NAME

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the handle (for the lab's state file)."""
        data = asdict(self)
        data["export_dir"] = str(self.export_dir)
        data["lab_dir"] = str(self.lab_dir)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NfsServerHandle:
        """Rebuild a handle recorded by :meth:`to_dict`."""
        return cls(
            pid=int(data["pid"]),
            bind_ip=str(data["bind_ip"]),
            port=int(data["port"]),
            pseudo=str(data["pseudo"]),
            export_dir=Path(data["export_dir"]),
            lab_dir=Path(data["lab_dir"]),
        )


def _quoted(value: str, what: str) -> str:
    """``value`` as a ganesha config string; refuse characters the config syntax cannot carry."""
    if any(ch in value for ch in '"\\\n\r\0'):
        raise BadInput(f"lab NFS server: {what} {value!r} contains a quote, backslash or control character")
    return f'"{value}"'


def _plugins_dir() -> Path | None:
    """The directory holding ganesha's VFS FSAL, or None to leave ganesha its built-in default."""
    for candidate in PLUGIN_DIRS:
        if (Path(candidate) / PLUGIN).is_file():
            return Path(candidate)
    return None


def render_config(
    *,
    lab_dir: Path,
    export_dir: Path,
    bind_ip: str,
    port: int,
    pseudo: str = DEFAULT_PSEUDO,
    squash: str = "No_Root_Squash",
    access: str = "RW",
    plugins_dir: Path | None = None,
) -> str:
    """The ganesha configuration for one NFSv4-only export of ``export_dir`` at ``pseudo``."""
    plugins = f"    Plugins_Dir = {_quoted(str(plugins_dir), 'plugins dir')};\n" if plugins_dir else ""
    return (
        "# Written by viocli's lab (viocli/lab/nfs_server.py); rewritten on every start.\n"
        "NFS_CORE_PARAM {\n"
        f"    Bind_addr = {bind_ip};\n"
        f"    NFS_Port = {port};\n"
        "    Protocols = 4;\n"
        "    Enable_NLM = false;\n"
        "    Enable_RQUOTA = false;\n"
        "    Enable_UDP = false;\n"
        f"    Dbus_Name_Prefix = viocli_lab_{port};\n"
        f"{plugins}"
        "}\n"
        "NFS_KRB5 {\n"
        "    Active_krb5 = false;\n"
        f"    CCacheDir = {_quoted(str(lab_dir / CCACHE_DIR), 'ccache dir')};\n"
        "}\n"
        "NFSV4 {\n"
        "    Graceless = true;\n"
        "    RecoveryBackend = fs;\n"
        f"    RecoveryRoot = {_quoted(str(lab_dir / RECOVERY_DIR), 'recovery dir')};\n"
        "    Only_Numeric_Owners = true;\n"
        "}\n"
        "LOG {\n"
        "    COMPONENTS {\n"
        "        DBUS = FATAL;\n"
        "    }\n"
        "}\n"
        "EXPORT {\n"
        "    Export_Id = 1;\n"
        f"    Path = {_quoted(str(export_dir), 'export dir')};\n"
        f"    Pseudo = {_quoted(pseudo, 'pseudo path')};\n"
        f"    Access_Type = {access};\n"
        f"    Squash = {squash};\n"
        "    Protocols = 4;\n"
        "    Transports = TCP;\n"
        "    SecType = sys;\n"
        "    FSAL {\n"
        "        Name = VFS;\n"
        "    }\n"
        "}\n"
    )


def _check_bindable(bind_ip: str, port: int) -> None:
    """Fail early, and clearly, when the address is not on this host or the port is taken."""
    family = socket.AF_INET6 if ":" in bind_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind_ip, port))
        except OSError as error:
            raise OperationFailed(
                f"lab NFS server: cannot listen on {bind_ip}:{port}: {error.strerror or error}",
                hint="the address must be on a local interface (the lab's bridge) and the port free",
            ) from None


def _accepts(bind_ip: str, port: int) -> bool:
    """True when a TCP connection to ``bind_ip:port`` is accepted."""
    try:
        with socket.create_connection((bind_ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def _log_from(path: Path, offset: int) -> str:
    """The log text written from ``offset`` on (empty when there is none yet)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _tail(text: str, lines: int = 15) -> list[str]:
    """The last lines of ``text``, for an error's details."""
    return [line for line in text.splitlines() if line.strip()][-lines:]


def start(
    lab_dir: Path,
    export_dir: Path,
    bind_ip: str,
    port: int = DEFAULT_PORT,
    *,
    pseudo: str = DEFAULT_PSEUDO,
    squash: str = "No_Root_Squash",
    access: str = "RW",
    timeout: float = 30.0,
) -> NfsServerHandle:
    """Start ganesha exporting ``export_dir`` as ``bind_ip:pseudo`` over NFSv4; return once it serves.

    The configuration, log, pid file and state go into ``lab_dir``; ``export_dir`` is created if missing.
    ``squash`` is the export's Squash option (the lab uses No_Root_Squash; tests may ask for Root_Squash);
    ``access`` its Access_Type (RW; tests may ask for a read-only export, RO).
    Ready means ganesha logged that it is initialized and accepts TCP connections on the port; a child that
    exits or is not ready within ``timeout`` seconds is stopped and reported with its log's last lines.
    """
    if os.geteuid() != 0:
        raise Refused("lab NFS server: ganesha needs root", hint="run the lab as root")
    try:
        address = ipaddress.ip_address(bind_ip)
    except ValueError:
        raise BadInput(f"lab NFS server: bind address {bind_ip!r} is not an IP address") from None
    if not 0 < port < 65536:
        raise BadInput(f"lab NFS server: port {port} is out of range")
    if not pseudo.startswith("/") or pseudo == "/" or "//" in pseudo:
        raise BadInput(f"lab NFS server: pseudo path {pseudo!r} must be an absolute path below /")
    if squash not in SQUASH_OPTIONS:
        raise BadInput(f"lab NFS server: squash {squash!r} is not one of {', '.join(SQUASH_OPTIONS)}")
    if access not in ACCESS_TYPES:
        raise BadInput(f"lab NFS server: access {access!r} is not one of {', '.join(ACCESS_TYPES)}")
    binary = shutil.which(GANESHA) or shutil.which(GANESHA, path="/usr/bin:/usr/sbin")
    if binary is None:
        raise OperationFailed(f"lab NFS server: {GANESHA} is not installed", hint=HINT_INSTALL)
    plugins = _plugins_dir()

    lab_dir = Path(lab_dir).resolve()
    export_dir = Path(export_dir).resolve()
    for directory in (lab_dir, export_dir, lab_dir / RECOVERY_DIR, lab_dir / CCACHE_DIR):
        directory.mkdir(parents=True, exist_ok=True)
    _check_bindable(str(address), port)

    paths = NfsServerHandle(0, str(address), port, pseudo, export_dir, lab_dir)
    config = render_config(
        lab_dir=lab_dir,
        export_dir=export_dir,
        bind_ip=str(address),
        port=port,
        pseudo=pseudo,
        squash=squash,
        access=access,
        plugins_dir=plugins,
    )
    paths.config_path.write_text(config, encoding="utf-8")
    log_path = paths.log_path
    log_offset = log_path.stat().st_size if log_path.exists() else 0
    paths.pid_file.unlink(missing_ok=True)

    command = [
        binary,
        "-F",
        "-f",
        str(paths.config_path),
        "-L",
        str(log_path),
        "-p",
        str(paths.pid_file),
    ]
    with (lab_dir / OUTPUT_NAME).open("ab") as output:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=lab_dir,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[child.pid] = child
    handle = NfsServerHandle(child.pid, str(address), port, pseudo, export_dir, lab_dir)

    deadline = time.monotonic() + timeout
    logged_ready = False
    while True:
        if child.poll() is not None:
            _CHILDREN.pop(child.pid, None)
            raise OperationFailed(
                f"lab NFS server: ganesha exited with status {child.returncode} while starting (log {log_path})",
                hint="see the log's last lines below",
                details=_tail(_log_from(log_path, log_offset)),
            )
        if not logged_ready:
            logged_ready = READY_MARK in _log_from(log_path, log_offset)
        if logged_ready and _accepts(str(address), port):
            return handle
        if time.monotonic() >= deadline:
            stop(handle)
            raise OperationFailed(
                f"lab NFS server: ganesha did not serve {address}:{port} within {timeout:g}s (log {log_path})",
                hint="see the log's last lines below",
                details=_tail(_log_from(log_path, log_offset)),
            )
        # No event to wait on: ganesha signals readiness only through its log and its listening socket.
        time.sleep(0.05)


def _cmdline(pid: int) -> list[str] | None:
    """The command line of ``pid``, or None when there is no such (live) process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if not raw:  # a zombie: exited, not yet reaped
        return None
    return [part.decode("utf-8", "replace") for part in raw.rstrip(b"\0").split(b"\0")]


def is_running(target: NfsServerHandle | int) -> bool:
    """True while the ganesha process of ``target`` (a handle or a pid) is alive."""
    pid = target.pid if isinstance(target, NfsServerHandle) else int(target)
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)
        return False
    cmdline = _cmdline(pid)
    return cmdline is not None and any(Path(part).name == GANESHA for part in cmdline[:1])


def stop(target: NfsServerHandle | int, timeout: float = 10.0) -> bool:
    """Stop the ganesha process of ``target`` (a handle or a pid): SIGTERM, then SIGKILL after ``timeout``.

    Acts on that pid only, and only when it is a ganesha process (given a handle: the one running the
    handle's configuration); a pid that is gone or now belongs to another process means the server is gone
    already, so nothing is signalled. Returns True when a process was stopped.
    """
    pid = target.pid if isinstance(target, NfsServerHandle) else int(target)
    if pid <= 0:
        raise BadInput(f"lab NFS server: {pid} is not a process id")
    ours = is_running(pid)
    if ours and isinstance(target, NfsServerHandle):
        ours = str(target.config_path) in (_cmdline(pid) or [])
    if not ours:
        return False
    started = system.start_time(pid)
    if started is not None:
        system.stop(system.Daemon(pid, started), timeout=timeout)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.poll()  # let Popen know it has ended (system.stop reaped it)
    if is_running(pid):
        raise OperationFailed(f"lab NFS server: ganesha (pid {pid}) did not exit after SIGKILL")
    if isinstance(target, NfsServerHandle):
        target.pid_file.unlink(missing_ok=True)
    return True
