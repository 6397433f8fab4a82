"""The lab's vCenter: govmomi's simulator with the lab inventory, built from source and served over TLS.

The Go program in ``viocli/lab/vcsim/`` is compiled in GOPATH mode against Debian's
``golang-github-vmware-govmomi-dev`` with ``golang-go``; nothing is downloaded. The binary is cached under
``<cache>/vcsim/<key>/vcsim``, the key being a SHA-256 of the Go sources, the Go version and the govmomi
package version, so it is rebuilt only when one of them changes.

The simulator listens on one address (the lab's management bridge, or 127.0.0.1 in tests) with a
certificate from the lab's own CA, and accepts exactly one login: ``administrator@vsphere.local`` with a
random password kept in ``<lab>/vcsim.credentials`` (mode 0600). It runs in its own process group,
logs to ``<lab>/vcsim.log``, and is stopped by its pid, never by name. It serves the vSphere WSDL at
``/sdk/vimService.wsdl`` (generated from pyVmomi by :mod:`viocli.lab.vim_wsdl` into ``<lab>/vcsim-wsdl``),
which oslo.vmware, and so OpenStack's VMware drivers, load before they log in.

Inventory (names the lab inventories use): datacenter ``vio-dc``; clusters ``vio-mgmt`` (3 hosts),
``vio-compute-a`` and ``vio-compute-b`` (2 hosts each); datastores ``vio-ds1..3`` on every host;
standard port groups ``vio-mgmt-pg`` and ``vio-api-pg`` on every host; VM folder ``vio-lab``; and the
template ``vio-template`` (Debian 12 64-bit, one vmxnet3 NIC on ``vio-mgmt-pg``) in ``vio-mgmt``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import secrets
import selectors
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from viocli import pki
from viocli.errors import BadInput, OperationFailed, Refused
from viocli.lab import system, vim_wsdl
from viocli.redact import REDACTOR

log = logging.getLogger("viocli.lab.simulator")

SOURCE_DIR = Path(__file__).with_name("vcsim")
GOPATH = Path("/usr/share/gocode")
GOVMOMI_SRC = GOPATH / "src" / "github.com" / "vmware" / "govmomi"
GO_PACKAGE = "golang-go"
GOVMOMI_PACKAGE = "golang-github-vmware-govmomi-dev"
BUILD_TIMEOUT = 900.0

DATACENTER = "vio-dc"
MGMT_CLUSTER = "vio-mgmt"
COMPUTE_CLUSTERS = ("vio-compute-a", "vio-compute-b")
DATASTORES = ("vio-ds1", "vio-ds2", "vio-ds3")
PORTGROUPS = ("vio-mgmt-pg", "vio-api-pg")
VM_FOLDER = "vio-lab"
TEMPLATE = "vio-template"

USERNAME = "administrator@vsphere.local"
CREDENTIALS_NAME = "vcsim.credentials"
CA_CERT_NAME = "vcsim-ca.pem"
CA_KEY_NAME = "vcsim-ca.key"
CERT_NAME = "vcsim.pem"
KEY_NAME = "vcsim.key"
LOG_NAME = "vcsim.log"
DATASTORE_DIR = "vcsim-datastores"
WSDL_DIR = "vcsim-wsdl"
READY_PREFIX = "VCSIM READY "
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class SimulatorHandle:
    """A running simulator: where it listens and how to log in (the password stays in its file)."""

    pid: int
    url: str
    host: str
    port: int
    ca_file: Path
    username: str
    password_file: Path

    @property
    def wsdl_url(self) -> str:
        """Where SOAP clients load the vSphere WSDL (oslo.vmware's default location)."""
        return f"{self.url}/vimService.wsdl"


# --- build -----------------------------------------------------------------------------------------


def build(cache_dir: Path, source_dir: Path = SOURCE_DIR) -> Path:
    """Return the simulator binary for ``source_dir``, compiling it into ``cache_dir`` only if not there yet."""
    go = _go_tool()
    _check_govmomi()
    cache_dir, source_dir = cache_dir.resolve(), source_dir.resolve()
    key = build_key(source_dir, go_version(go), govmomi_version())
    root = cache_dir / "vcsim"
    target = root / key / "vcsim"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=root))
    try:
        started = time.monotonic()
        _compile(go, source_dir, work / "vcsim", root / "gocache")
        log.info("built the vCenter simulator in %.1f s: %s", time.monotonic() - started, target)
        _publish(work, target.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def build_key(source_dir: Path, go_version: str, govmomi_version: str) -> str:
    """SHA-256 of the Go sources (names and contents), the Go version and the govmomi package version."""
    digest = hashlib.sha256()
    for path in sorted(source_dir.glob("*.go")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"go={go_version}\0govmomi={govmomi_version}".encode())
    return digest.hexdigest()


def go_version(go: str) -> str:
    """The Go toolchain's version, e.g. ``go1.19.8``."""
    result = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, env=_go_env(None), check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise OperationFailed(f"cannot read the Go version from {go}: {result.stderr.strip()}")
    return result.stdout.strip()


def govmomi_version() -> str:
    """The installed govmomi package's version, or a fingerprint of its simulator sources without dpkg."""
    with contextlib.suppress(OSError):
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", GOVMOMI_PACKAGE], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    digest = hashlib.sha256()
    for path in sorted((GOVMOMI_SRC / "simulator").glob("*.go")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return "files-" + digest.hexdigest()[:16]


def _go_tool() -> str:
    go = shutil.which("go")
    if go is None:
        raise Refused(
            "Go is not installed: the lab builds its vCenter simulator with it",
            hint=f"install it: apt-get install {GO_PACKAGE}",
        )
    return go


def _check_govmomi() -> None:
    if not (GOVMOMI_SRC / "simulator" / "model.go").is_file():
        raise Refused(
            f"govmomi's source is missing from {GOVMOMI_SRC}: the lab's vCenter simulator is built from it",
            hint=f"install it: apt-get install {GOVMOMI_PACKAGE}",
        )


def _go_env(gocache: Path | None) -> dict[str, str]:
    """GOPATH mode on Debian's Go sources, offline, no cgo; the build cache in ``gocache``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO") and k != "CGO_ENABLED"}
    env.update(
        GO111MODULE="off",
        GOPATH=str(GOPATH),
        GOENV="off",
        GOFLAGS="",
        GOPROXY="off",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
    )
    if gocache is not None:
        env["GOCACHE"] = str(gocache)
    return env


def _compile(go: str, source_dir: Path, output: Path, gocache: Path) -> None:
    # GOPATH mode builds "." from the source directory (an absolute import path is refused).
    command = [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(output), "."]
    try:
        result = subprocess.run(
            command,
            cwd=source_dir,
            env=_go_env(gocache),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"building the vCenter simulator took over {BUILD_TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise OperationFailed(
            f"building the vCenter simulator from {source_dir} failed (go build exit {result.returncode})",
            details=lines[-20:],
        )


def _publish(work: Path, final_dir: Path) -> None:
    """Move a finished build into place; a concurrent builder of the same key may have won."""
    staged = work / "out"
    staged.mkdir()
    (work / "vcsim").rename(staged / "vcsim")
    try:
        staged.rename(final_dir)
    except OSError:
        if not (final_dir / "vcsim").is_file():
            raise


# --- TLS and credentials ---------------------------------------------------------------------------


def generate_tls(lab_dir: Path, ip: str) -> tuple[Path, Path, Path]:
    """Return (CA certificate, server certificate, server key) for ``ip``, made once and reused while valid.

    The lab CA signs a server certificate whose subjectAltName is the IP address. Private keys and the
    server certificate are 0600, the CA certificate 0644 (clients need it).
    """
    address = _parse_ip(ip)
    files = pki.CertFiles(lab_dir / CA_CERT_NAME, lab_dir / CA_KEY_NAME, lab_dir / CERT_NAME, lab_dir / KEY_NAME)
    pki.ensure_server_cert(files, [str(address)], ca_name="viocli lab CA", cert_name=f"vcsim {address}")
    return files.ca_cert, files.cert, files.key


def ensure_credentials(lab_dir: Path) -> tuple[str, Path]:
    """Return (username, credentials file): two lines, username and a random password, made once (0600)."""
    path = lab_dir / CREDENTIALS_NAME
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    if len(lines) >= 2 and lines[0] and lines[1]:
        path.chmod(0o600)
        REDACTOR.add([lines[1]])
        return lines[0], path
    lab_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    REDACTOR.add([password])
    pki.write_atomic(path, f"{USERNAME}\n{password}\n".encode(), 0o600)
    return USERNAME, path


def read_password(password_file: Path) -> str:
    """The password (second line) of a credentials file."""
    lines = password_file.read_text(encoding="utf-8").splitlines()
    if len(lines) < 2 or not lines[1]:
        raise BadInput(f"{password_file} has no password line")
    REDACTOR.add([lines[1]])
    return lines[1]


def _parse_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        raise BadInput(f"the simulator's listen address must be an IP address, not {ip!r}") from None


# --- process ---------------------------------------------------------------------------------------


def start(
    binary: Path,
    lab_dir: Path,
    listen_ip: str,
    port: int,
    timeout: float = START_TIMEOUT,
    also_ports: Sequence[int] = (),
) -> SimulatorHandle:
    """Start the simulator on ``listen_ip:port`` (port 0: any free port) and wait for it to listen.

    It runs in its own process group with stderr appended to ``lab_dir/vcsim.log``; its datastores'
    files go to ``lab_dir/vcsim-datastores``; it serves the WSDL written to ``lab_dir/vcsim-wsdl``
    (once per pyVmomi version). ``also_ports`` are more ports on ``listen_ip`` serving the same (443 for
    glance_store's VMware store, which cannot be given a port). Returns once it printed its READY line.
    """
    address = _parse_ip(listen_ip)
    binary, lab_dir = Path(binary).resolve(), lab_dir.resolve()  # the child runs in lab_dir
    ca_file, cert_file, key_file = generate_tls(lab_dir, listen_ip)
    username, password_file = ensure_credentials(lab_dir)
    listen = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    log_path = lab_dir / LOG_NAME
    wsdl_dir = vim_wsdl.write(lab_dir / WSDL_DIR)
    command = [
        str(binary),
        "-listen", listen,
        "-cert", str(cert_file),
        "-key", str(key_file),
        "-credentials", str(password_file),
        "-datastore-dir", str(lab_dir / DATASTORE_DIR),
        "-wsdl-dir", str(wsdl_dir),
    ]  # fmt: skip
    for extra in also_ports:
        command += ["-also-listen", f"[{address}]:{extra}" if address.version == 6 else f"{address}:{extra}"]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            cwd=lab_dir,
            start_new_session=True,
            close_fds=True,
        )
    try:
        url = _wait_ready(process, timeout)
    except BaseException as error:  # failed, timed out or interrupted: no simulator left behind
        stop(process.pid)
        if isinstance(error, OperationFailed):
            error.hint = f"see {log_path}"
            error.details = _tail(log_path)
        raise
    finally:
        process.stdout.close()
    parts = urlsplit(url)
    log.info("vCenter simulator pid %d serving %s", process.pid, url)
    return SimulatorHandle(
        pid=process.pid,
        url=url,
        host=parts.hostname or listen_ip,
        port=parts.port or port,
        ca_file=ca_file,
        username=username,
        password_file=password_file,
    )


def stop(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the simulator with this pid: SIGTERM, then SIGKILL after ``timeout``. Gone already is fine.

    Refuses to signal a live process that is not a vcsim binary (the pid was reused).
    """
    started = system.start_time(pid)
    if started is None or not system.running(pid):
        system.reap(pid)
        return
    name = _program(pid)
    if name != "vcsim":  # unreadable counts as foreign: never signal what we cannot identify
        raise Refused(f"process {pid} is {name or 'unidentified'}, not the vCenter simulator: not stopping it")
    system.stop(system.Daemon(pid, started), timeout=timeout)
    if system.running(pid):
        raise OperationFailed(f"the vCenter simulator (pid {pid}) did not exit after SIGKILL")


def connect(handle: SimulatorHandle) -> Any:
    """Log in to the simulator; TLS is verified against the lab CA (hostname included). Returns the ServiceInstance."""
    from pyVim.connect import SmartConnect

    context = ssl.create_default_context(cafile=str(handle.ca_file))
    password = read_password(handle.password_file)
    return SmartConnect(host=handle.host, port=handle.port, user=handle.username, pwd=password, sslContext=context)


def _wait_ready(process: subprocess.Popen, timeout: float) -> str:
    """Read the child's stdout until its READY line; returns the URL it announces."""
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationFailed(f"the vCenter simulator did not report ready within {timeout:.0f} s")
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                code = process.wait(timeout=5)
                raise OperationFailed(f"the vCenter simulator exited (status {code}) before it was ready")
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                text = line.decode(errors="replace").strip()
                if text.startswith(READY_PREFIX):
                    return text[len(READY_PREFIX) :].strip()


def _program(pid: int) -> str | None:
    """The basename of the process's argv[0], or None if unreadable."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return None
    return os.path.basename(argv0.decode(errors="replace")) or None


def _tail(path: Path, lines: int = 20) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []
