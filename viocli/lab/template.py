"""The lab's template root filesystem: Debian 12 with every package the roles need, built once and cached.

Every lab node boots from this tree as the lower layer of an overlay (the node's "disk" is the upper
layer), the way VIO's VMs were cloned from one offline appliance template. The tree is built with
mmdebstrap from the machine's own apt configuration (no mirror is named anywhere in viocli), with
``--no-install-recommends`` and debconf preseeded so no package configures a database or an endpoint.
No service starts during the build (mmdebstrap keeps a denying ``policy-rc.d`` in place while it
installs and removes it at the end, and nothing runs an init system in the chroot), and none starts
at a node's first boot but sshd and chrony: every other unit is disabled by a preset, and the roles
enable at boot what should start with the VM (never Galera, which viocli starts in order).

The result is a chroot, not a bootable image: no SSH host keys (each node makes its own), an empty
``/etc/machine-id``, ``/etc/hosts`` and ``/etc/hostname`` left for the node to write, sshd allowing
root by key only.

Cache layout under ``cache_root`` (default ``/var/cache/viocli/templates``), ``<key>`` being
:func:`cache_key` of the package list, the apt suites and the build recipe:

- ``<key>/rootfs``      the template tree (published by one atomic rename of ``<key>.tmp``)
- ``<key>/build.json``  packages, seconds taken, size, date (see :func:`template_info`)
- ``<key>.log``         the full mmdebstrap output of the last build
- ``<key>.lock``        flock taken while building, so concurrent builds wait instead of colliding
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from viocli.errors import OperationFailed, Refused
from viocli.logsetup import get_logger

Log = Callable[[str], None]

TEMPLATE_SUITE = "bookworm"  # Debian 12
BUILD_VERSION = "2"  # bump when the build changes in a way the recipe digest below does not see
DEFAULT_CACHE_ROOT = Path("/var/cache/viocli/templates")
ETC_APT = Path("/etc/apt")
PACKAGES_FILE = Path(__file__).with_name("template-packages.txt")
MMDEBSTRAP = "mmdebstrap"
BUILD_TIMEOUT_SECONDS = 3600

# The host's apt options that also apply to the build (validity checks of a snapshot mirror, a proxy).
HOST_APT_OPTIONS = (
    "Acquire::Check-Valid-Until",
    "Acquire::Check-Date",
    "Acquire::http::Proxy",
    "Acquire::https::Proxy",
    "Acquire::Retries",
)

APT_OPTIONS = (
    'APT::Install-Recommends "false"',
    'APT::Install-Suggests "false"',
    'Acquire::Languages "none"',
)

# Manual pages, translations and documentation are not needed on a node (copyright files are kept).
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
)

# Debconf answers: the OpenStack packages must not configure a database, RabbitMQ, Keystone
# authtoken or endpoints at install time (the playbooks do that on the nodes). Most defaults are
# already "false"; they are stated so a changed default cannot make the build prompt or configure.
_OPENSTACK_QUESTIONS = {
    "keystone": ("keystone/configure_db", "keystone/create-admin-tenant", "keystone/register-endpoint"),
    "glance-common": ("glance/configure_db", "glance/configure_rabbit", "glance/configure_ksat"),
    "glance-api": ("glance/configure_api-endpoint",),
    "placement-common": ("placement/configure_db", "placement/configure_ksat"),
    "placement-api": ("placement/configure_api-endpoint",),
    "nova-common": (
        "nova/configure_db",
        "nova/configure_rabbit",
        "nova/configure_ksat",
        "nova/configure_neutron",
        "nova/configure_placement",
    ),
    "nova-api": ("novaapi/configure_db", "nova/configure_api-endpoint"),
    "neutron-common": (
        "neutron/configure_db",
        "neutron/configure_rabbit",
        "neutron/configure_ksat",
        "neutron/configure_nova",
    ),
    "cinder-common": ("cinder/configure_db", "cinder/configure_rabbit", "cinder/configure_ksat"),
    "heat-common": ("heat/configure_with_debconf", "heat/configure_db", "heat/configure_rabbit", "heat/configure_ksat"),
}
_DBCONFIG_PACKAGES = ("keystone", "glance-common", "placement-common", "nova-common", "nova-api", "neutron-common",
                      "cinder-common", "heat-common")  # fmt: skip


def debconf_preseed() -> str:
    """The debconf selections loaded into the chroot before the packages are installed."""
    lines = [
        f"{pkg} {question} boolean false" for pkg, questions in _OPENSTACK_QUESTIONS.items() for question in questions
    ]
    lines += [f"{pkg} {pkg}/dbconfig-install boolean false" for pkg in _DBCONFIG_PACKAGES]
    lines += ["tzdata tzdata/Areas select Etc", "tzdata tzdata/Zones/Etc select UTC"]
    return "\n".join(lines) + "\n"


# Run on the host after every package is installed, with the tree as $1 (mmdebstrap's customize hook).
CUSTOMIZE_SCRIPT = r"""#!/bin/sh
set -eu
root="$1"

# SSH: every node generates its own host keys at its first start.
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/ssh/sshd_config.d" "$root/run/sshd" "$root/root/.ssh"
chmod 0755 "$root/run/sshd"
chmod 0700 "$root/root/.ssh"
cat > "$root/etc/ssh/sshd_config.d/00-viocli-lab.conf" <<'EOF'
# viocli lab node: root by SSH key only, with the one host key the node makes at its first start.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
EOF
# A locked password ("!") would make sshd without PAM refuse even key logins; "*" only has no password.
chroot "$root" usermod -p '*' root

# Identity: a node writes its own hostname and hosts file; machine-id is made at first use.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo localhost > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
rm -f "$root/etc/resolv.conf"
: > "$root/etc/resolv.conf"

# RabbitMQ made an Erlang cookie at install; a shared secret is the deployment's, not the template's.
rm -f "$root/var/lib/rabbitmq/.erlang.cookie"

# Boot: only sshd and chrony start with a fresh node; the roles enable what else starts at boot.
mkdir -p "$root/etc/systemd/system-preset"
cat > "$root/etc/systemd/system-preset/00-viocli-lab.preset" <<'EOF'
enable ssh.service
enable chrony.service
disable *
EOF
chroot "$root" systemctl preset-all

# Locale and time zone.
echo 'LANG=C.UTF-8' > "$root/etc/default/locale"
echo 'Etc/UTC' > "$root/etc/timezone"
ln -sfn /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"

# nova-compute needs some "nova-compute-hypervisor" package; the ironic one pulls no libvirt daemon
# or QEMU. The template is a vSphere appliance: its compute driver is the vCenter driver.
if [ -f "$root/etc/nova/nova-compute.conf" ]; then
    cat > "$root/etc/nova/nova-compute.conf" <<'EOF'
# viocli template: nova-compute drives a vCenter cluster (the playbooks fill in [vmware]).
[DEFAULT]
compute_driver = vmwareapi.VMwareVCDriver
EOF
fi
"""

# What the finished tree must contain (beyond every listed package being installed).
REQUIRED_FILES = (
    "usr/bin/python3",
    "lib/systemd/systemd",
    "usr/sbin/sshd",
    "usr/bin/ssh-keygen",
    "usr/sbin/mariadbd",
    "usr/lib/galera/libgalera_smm.so",
    "usr/sbin/rabbitmqctl",
    "usr/sbin/haproxy",
    "usr/sbin/keepalived",
    "usr/bin/memcached",
    "usr/bin/keystone-manage",
    "usr/bin/nova-compute",
    "usr/bin/openstack",
)


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` source of the machine's apt configuration: one URI with one suite."""

    uri: str
    suite: str
    components: tuple[str, ...] = ()
    signed_by: str | None = None  # a keyring path, or an inline ASCII-armored key block
    origin: str = field(default="", compare=False)  # the file it was read from

    def deb822(self) -> str:
        """This source as one deb822 stanza (what mmdebstrap is given, and the chroot keeps)."""
        lines = ["Types: deb", f"URIs: {self.uri}", f"Suites: {self.suite}"]
        if self.components:
            lines.append(f"Components: {' '.join(self.components)}")
        if self.signed_by:
            key_lines = self.signed_by.strip().splitlines()
            lines.append(f"Signed-By: {key_lines[0]}")
            lines += [f" {line}" if line.strip() else " ." for line in key_lines[1:]]
        return "\n".join(lines) + "\n"


# --- apt sources -------------------------------------------------------------------------------


def _one_line_sources(text: str, origin: str) -> list[AptSource]:
    """Parse the one-line format (``sources.list``, ``*.list``)."""
    found = []
    pattern = re.compile(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$")
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        match = pattern.match(line)
        if not match or match.group(1) != "deb":
            continue
        options = dict(opt.split("=", 1) for opt in (match.group(2) or "").split() if "=" in opt)
        found.append(
            AptSource(
                uri=match.group(3),
                suite=match.group(4),
                components=tuple(match.group(5).split()),
                signed_by=options.get("signed-by"),
                origin=origin,
            )
        )
    return found


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Stanzas of a deb822 file as {lower-case field: value}; continuation lines joined with newlines."""
    stanza: dict[str, str] = {}
    last: str | None = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, last = {}, None
        elif raw[0] in " \t" and last is not None:
            line = raw.strip()
            stanza[last] += "\n" + ("" if line == "." else line)
        elif ":" in raw:
            name, value = raw.split(":", 1)
            last = name.strip().lower()
            stanza[last] = value.strip()
    if stanza:
        yield stanza


def _deb822_sources(text: str, origin: str) -> list[AptSource]:
    """Parse the deb822 format (``*.sources``); one AptSource per URI and suite."""
    found = []
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        signed_by = stanza.get("signed-by", "").strip() or None
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            for suite in stanza.get("suites", "").split():
                found.append(AptSource(uri, suite, components, signed_by, origin))
    return found


def _source_files(etc_apt: Path) -> list[Path]:
    """The files apt reads, in apt's order: sources.list, then sources.list.d/*.list and *.sources."""
    files = [etc_apt / "sources.list"] if (etc_apt / "sources.list").is_file() else []
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.is_file() and p.suffix in (".list", ".sources"))
    return files


def _in_release(suite: str, codename: str) -> bool:
    """``bookworm``, ``bookworm-updates``, ``bookworm-security`` (and old ``bookworm/updates``)."""
    return suite == codename or suite.startswith((f"{codename}-", f"{codename}/"))


def apt_sources(etc_apt: Path = ETC_APT, *, codename: str | None = TEMPLATE_SUITE) -> list[AptSource]:
    """The machine's ``deb`` sources (one-line and deb822 files) for ``codename``'s suites.

    ``codename=None`` returns every ``deb`` source. Disabled stanzas, ``deb-src`` entries and files
    apt ignores (any name not ending in ``.list`` or ``.sources``) are left out; duplicates once.
    """
    sources: list[AptSource] = []
    for path in _source_files(etc_apt):
        text = path.read_text(encoding="utf-8", errors="replace")
        parse = _deb822_sources if path.suffix == ".sources" else _one_line_sources
        for source in parse(text, str(path)):
            if (codename is None or _in_release(source.suite, codename)) and source not in sources:
                sources.append(source)
    return sources


def render_sources(sources: Iterable[AptSource]) -> str:
    """The sources as one deb822 file."""
    return "\n".join(source.deb822() for source in sources)


# --- package list and cache key ----------------------------------------------------------------


def package_list(path: Path = PACKAGES_FILE) -> list[str]:
    """The template's packages from the data file: one per line, ``#`` comments, no duplicates."""
    packages: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
            raise OperationFailed(f"template package list {path}:{number}: '{name}' is not a Debian package name")
        if name not in packages:
            packages.append(name)
    return packages


def build_script_version() -> str:
    """BUILD_VERSION plus a digest of the recipe (hooks, preseed, apt and dpkg options)."""
    recipe = "\0".join([CUSTOMIZE_SCRIPT, debconf_preseed(), *APT_OPTIONS, *DPKG_OPTIONS, "minbase"])
    return f"{BUILD_VERSION}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def cache_key(packages: Iterable[str], sources: Iterable[AptSource], version: str | None = None) -> str:
    """sha256 (first 16 hex digits) of the sorted package list, the suites and the build script version.

    The suites count with their components; the mirror URIs do not (any mirror serves the same archive).
    """
    payload = {
        "packages": sorted(set(packages)),
        "suites": sorted({f"{s.suite} {' '.join(s.components)}".strip() for s in sources}),
        "version": version if version is not None else build_script_version(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# --- cache entries -----------------------------------------------------------------------------


def _is_complete(entry: Path) -> bool:
    return (entry / "build.json").is_file() and (entry / "rootfs" / "usr" / "bin" / "python3").exists()


def template_info(path: Path) -> dict:
    """The build record of a cached template; ``path`` is its ``<key>`` directory or its ``rootfs``."""
    path = Path(path)
    record = path / "build.json" if (path / "build.json").is_file() else path.parent / "build.json"
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OperationFailed(f"template at {path} has no readable build record ({record}): {exc}") from exc


@contextlib.contextmanager
def _build_lock(path: Path, log: Log) -> Iterator[None]:
    """Exclusive flock on ``path``; waits (and says so) while another process builds the same template."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"template: another process is building {path.stem}; waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first), from /proc/self/mountinfo."""
    top = os.path.realpath(path)
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == top or point.startswith(top + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Unmount whatever an interrupted build left mounted below ``path``, then delete it."""
    if not path.exists() and not path.is_symlink():
        return
    for point in _mounts_under(path):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", point], capture_output=True)
    left = _mounts_under(path)
    if left:  # never delete through a mount (a bind of /dev or /proc would take the host's with it)
        raise OperationFailed(f"template: cannot remove {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path)


# --- the build ---------------------------------------------------------------------------------


def _host_apt_options() -> list[str]:
    """The host's values of HOST_APT_OPTIONS, as apt.conf lines, from ``apt-config dump``."""
    try:
        dump = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    wanted = {name.lower() for name in HOST_APT_OPTIONS}
    options = []
    for line in dump.splitlines():
        name, _, value = line.partition(" ")
        if name.lower() in wanted and value.endswith(";"):
            options.append(f"{name} {value[:-1]}")
    return options


def _mmdebstrap_argv(work: Path, packages: list[str], apt_options: list[str]) -> list[str]:
    """The mmdebstrap command building ``work/rootfs`` with hooks and sources written in ``work``."""
    argv = [MMDEBSTRAP, "--mode=root", "--format=directory", "--variant=minbase", "--verbose"]
    argv.append("--include=" + ",".join(packages))
    argv += [f"--aptopt={option}" for option in (*APT_OPTIONS, *apt_options)]
    argv += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    argv.append(f'--essential-hook=chroot "$1" debconf-set-selections < {shlex.quote(str(work / "preseed"))}')
    argv.append(f'--customize-hook=sh {shlex.quote(str(work / "customize.sh"))} "$1"')
    argv += [TEMPLATE_SUITE, str(work / "rootfs"), str(work / "sources")]
    return argv


def _shown(argv: list[str]) -> str:
    """The command for the log, without the values of host apt options (a proxy may carry a password)."""
    shown = [a.split(" ", 1)[0] + " ..." if a.startswith("--aptopt=") and "proxy" in a.lower() else a for a in argv]
    return shlex.join(shown)


def _run_mmdebstrap(argv: list[str], log_file: Path, log: Log, timeout: float) -> None:
    """Run mmdebstrap, its whole output into ``log_file``, its progress lines to ``log``."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true"}
    timed_out = threading.Event()
    with open(log_file, "a", encoding="utf-8") as out:
        out.write(f"$ {_shown(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, errors="replace", env=env, start_new_session=True)  # fmt: skip

        def on_timeout() -> None:
            timed_out.set()
            _kill_group(proc)

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if line.startswith("I: "):
                    log(f"template: {line[3:].strip()}")
            code = proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            timer.cancel()
    if timed_out.is_set():
        raise RuntimeError(f"mmdebstrap timed out after {int(timeout)} s")
    if code != 0:
        raise RuntimeError(f"mmdebstrap exited with {code}{_last_error(log_file)}")


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill mmdebstrap and everything it started (its own session, found by its pid)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _last_error(log_file: Path) -> str:
    """The last ``E:`` line of the log, as ``: <line>`` (or nothing)."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith(("E:", "dpkg: error"))]
    return f": {errors[-1]}" if errors else ""


def _finalize(rootfs: Path) -> None:
    """What must hold after mmdebstrap's own cleanup: no start blocker, no host keys, no machine id."""
    (rootfs / "usr" / "sbin" / "policy-rc.d").unlink(missing_ok=True)
    for key in (rootfs / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    machine_id = rootfs / "etc" / "machine-id"
    if machine_id.exists():
        machine_id.write_text("")
    # sshd's privilege separation directory (mmdebstrap empties /run; a node mounts a tmpfs there and
    # makes it again, but a plain `chroot ROOT sshd -t` needs it too).
    (rootfs / "run" / "sshd").mkdir(mode=0o755, parents=True, exist_ok=True)


def _installed_packages(rootfs: Path, *, provides: bool = True) -> set[str]:
    """Packages dpkg lists as installed in ``rootfs`` (and, with ``provides``, the virtual ones they provide)."""
    status = (rootfs / "var" / "lib" / "dpkg" / "status").read_text(encoding="utf-8", errors="replace")
    installed = set()
    for stanza in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Status") == "install ok installed":
            installed.add(fields["Package"])
            if provides:
                virtual = fields.get("Provides", "").split(",")
                installed.update(item.split("(")[0].strip() for item in virtual if item.strip())
    return installed


def _check_rootfs(rootfs: Path, packages: list[str]) -> None:
    """Refuse to publish a tree that misses a package or a file the roles need."""
    missing = sorted(set(packages) - _installed_packages(rootfs))
    if missing:
        raise RuntimeError(f"packages not installed: {', '.join(missing)}")
    absent = [f for f in REQUIRED_FILES if not (rootfs / f).exists()]
    if absent:
        raise RuntimeError(f"files missing from the tree: {', '.join(absent)}")
    ssd = rootfs / "usr" / "sbin" / "start-stop-daemon"
    if ssd.exists() and ssd.read_bytes()[:4] != b"\x7fELF":
        raise RuntimeError("start-stop-daemon is still the build's placeholder")


def _tree_size(path: Path) -> int:
    """Disk usage of a tree in bytes (like ``du -s -B1``: allocated blocks, hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(directory, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total + os.lstat(path).st_blocks * 512


def _mmdebstrap_version() -> str:
    try:
        result = subprocess.run([MMDEBSTRAP, "--version"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    return (result.stdout or result.stderr).strip()


def _build(cache_root: Path, key: str, packages: list[str], sources: list[AptSource], log: Log, timeout: float) -> None:
    """Build ``<key>.tmp``, check it, record it and publish it as ``<key>``; on failure leave nothing."""
    work = cache_root / f"{key}.tmp"
    final = cache_root / key
    log_file = cache_root / f"{key}.log"
    step = "prepare"
    started = time.monotonic()
    try:
        _remove_tree(work)  # a build that crashed before its cleanup
        work.mkdir(mode=0o755)
        log_file.write_text(f"viocli template build {key} started {datetime.now(UTC).isoformat()}\n")
        (work / "sources").write_text(render_sources(sources))
        (work / "preseed").write_text(debconf_preseed())
        (work / "customize.sh").write_text(CUSTOMIZE_SCRIPT)
        step = "mmdebstrap"
        log(f"template: building {key} ({len(packages)} packages, log {log_file})")
        _run_mmdebstrap(_mmdebstrap_argv(work, packages, _host_apt_options()), log_file, log, timeout)
        step = "finalize"
        rootfs = work / "rootfs"
        _finalize(rootfs)
        step = "check"
        _check_rootfs(rootfs, packages)
        step = "record"
        for name in ("sources", "preseed", "customize.sh"):
            (work / name).unlink()
        info = {
            "key": key,
            "suite": TEMPLATE_SUITE,
            "suites": sorted({s.suite for s in sources}),
            "packages": packages,
            "installed_packages": len(_installed_packages(rootfs, provides=False)),
            "build_version": build_script_version(),
            "builder": _mmdebstrap_version(),
            "seconds": round(time.monotonic() - started, 1),
            "size_bytes": _tree_size(rootfs),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (work / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        step = "publish"
        _remove_tree(final)  # an entry without its build record is not a template
        os.rename(work, final)
    except BaseException as exc:
        with contextlib.suppress(Exception), open(log_file, "a", encoding="utf-8") as out:
            out.write(f"viocli: failed at step {step}: {exc!r}\n")
        with contextlib.suppress(OperationFailed, OSError):
            _remove_tree(work)
        if not isinstance(exc, Exception):
            raise
        raise OperationFailed(
            f"template build failed at step '{step}': {exc}",
            hint=f"see the build log {log_file}",
            details=[f"log: {log_file}"],
        ) from exc
    log(f"template: built {key} in {info['seconds']:.0f} s, {info['size_bytes'] / 2**20:.0f} MiB")


def build_template(
    cache_root: Path = DEFAULT_CACHE_ROOT,
    *,
    log: Log | None = None,
    etc_apt: Path = ETC_APT,
    timeout: float = BUILD_TIMEOUT_SECONDS,
) -> Path:
    """The template's root filesystem, built on first use and cached; returns ``<cache_root>/<key>/rootfs``.

    Raises Refused when not root or mmdebstrap is missing, OperationFailed when the build fails
    (naming the step and the log file) or when the machine has no apt source for Debian 12.
    """
    log = log or get_logger().info
    cache_root = Path(cache_root)
    packages = package_list()
    sources = apt_sources(etc_apt)
    if not any(s.suite == TEMPLATE_SUITE for s in sources):
        raise OperationFailed(
            f"template: no apt source for Debian 12 ({TEMPLATE_SUITE}) in {etc_apt}",
            hint="the template is built from this machine's own apt configuration; add a bookworm source",
        )
    key = cache_key(packages, sources)
    entry = cache_root / key
    if _is_complete(entry):
        return entry / "rootfs"
    if os.geteuid() != 0:
        raise Refused("building the lab's template root filesystem needs root")
    if shutil.which(MMDEBSTRAP) is None:
        raise Refused(f"building the lab's template needs {MMDEBSTRAP}", hint="apt-get install mmdebstrap")
    cache_root.mkdir(parents=True, exist_ok=True)
    with _build_lock(cache_root / f"{key}.lock", log):
        if _is_complete(entry):
            log(f"template: {key} was built by another process")
        else:
            _build(cache_root, key, packages, sources, log, timeout)
    return entry / "rootfs"
