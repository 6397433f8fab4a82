"""The inventory file's schema: what each key is, its type and its default.

Only shape and per-field rules live here; rules across fields (addresses, counts by mode) and the
content of the files the inventory names are in :mod:`viocli.inventory.checks`, so that all of them
are reported together.

Every string field has a rule that fits it (a host name, a POSIX user, an OpenStack or vCenter
name, a path...), and every one of them refuses control characters: a value never spans lines.
Messages quote values through :func:`~viocli.inventory.problems.excerpt` (short and escaped).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from viocli.inventory.problems import excerpt, path_excerpt
from viocli.names import NAME_PATTERN

HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
NFS_RE = re.compile(r"^(?P<host>[^:/\s]+):(?P<path>/[^\s]*)$")
# C0 controls, DEL, C1 controls (NEL among them) and the Unicode line and paragraph separators:
# each could end a line in a rendered file, a log or a terminal.
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
POSIX_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
OPENSTACK_NAME_RE = re.compile(r"[A-Za-z0-9_.@][A-Za-z0-9_.@-]{0,63}")
REGION_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}")
VCENTER_NAME_MAX = 80
TEXT_MAX = 256
PATH_MAX = 4096


def cluster_slug(name: str) -> str:
    """The part of a compute cluster's service name ``nova-compute-<slug>`` derived from its name.

    Lower-cased, every run of characters outside ``[a-z0-9]`` replaced by one ``-``, leading and
    trailing ``-`` stripped. The nova_compute role computes the same in Jinja
    (playbooks/roles/nova_compute/tasks/config.yml, ``cluster_slugs``): change both together.
    """
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _single_line(value: str) -> str:
    """Every string in the inventory is one line of text: no control character anywhere."""
    found = CONTROL_RE.search(value)
    if found:
        raise ValueError(
            f"{excerpt(value)} contains a control character ({found.group()!r} at character {found.start() + 1}); "
            "every value must be a single line of printable text"
        )
    return value


def _full(pattern: re.Pattern[str], value: str) -> bool:
    # fullmatch, not match with $: "$" also matches before a trailing newline.
    return pattern.fullmatch(value) is not None


def _pattern_rule(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    """A validator that accepts a value matching ``pattern`` whole, else says it is not ``what``."""

    def check(value: str) -> str:
        if not _full(pattern, value):
            raise ValueError(f"{excerpt(value)} is not {what}")
        return value

    return check


_host_name = _pattern_rule(HOSTNAME_RE, "a host name or IP address (letters, digits, dots and inner dashes)")
_dns_name = _pattern_rule(HOSTNAME_RE, "a valid DNS name (letters, digits, dots and inner dashes)")
_posix_user = _pattern_rule(
    POSIX_USER_RE,
    "a POSIX user name: 1 to 32 lower-case letters, digits, '_' and '-', starting with a letter or '_'",
)
_openstack_name = _pattern_rule(
    OPENSTACK_NAME_RE,
    "an OpenStack name: 1 to 64 letters, digits, '_', '.', '@' and '-', no spaces, not starting with '-'",
)
_region = _pattern_rule(REGION_RE, "a region name: 1 to 64 letters, digits, '_', '.' and '-', not starting with '-'")


def _vcenter_name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a vCenter object name, or None."""
    if not 1 <= len(value) <= VCENTER_NAME_MAX:
        return f"it has {len(value)} characters, not 1 to {VCENTER_NAME_MAX}"
    for character in "/\\%":
        if character in value:
            return f"it contains {character!r}"
    if value != value.strip(" "):
        return "it starts or ends with a space"
    if value.startswith("-"):
        return "it starts with '-'"
    if not value.isprintable():
        return "it contains a non-printable character"
    return None


def _vcenter_name(value: str) -> str:
    problem = _vcenter_name_problem(value)
    if problem:
        raise ValueError(
            f"{excerpt(value)} is not a usable vCenter object name: {problem}; use 1 to {VCENTER_NAME_MAX} "
            "printable characters without '/', '\\' or '%', no leading or trailing space, not starting with '-'"
        )
    return value


def _vcenter_user(value: str) -> str:
    if not 1 <= len(value) <= TEXT_MAX or value.startswith("-") or not value.isprintable() or value.split() != [value]:
        raise ValueError(
            f"{excerpt(value)} is not a vCenter user name: no spaces, not starting with '-'; "
            "write it like administrator@vsphere.local or DOMAIN\\user"
        )
    return value


def _vcenter_folder(value: str) -> str:
    problem = None
    if value.startswith("/"):
        problem = "it starts with '/' (it is relative to the datacenter's VM folder)"
    else:
        for part in value.split("/"):
            if part in (".", ".."):
                problem = f"it contains the folder name {part!r}"
            else:
                problem = _vcenter_name_problem(part)
                problem = f"folder name {excerpt(part)}: {problem}" if problem else None
            if problem:
                break
    if problem:
        raise ValueError(
            f"{excerpt(value)} is not a vCenter folder path: {problem}; write folder names separated by '/', "
            "like vio or Tenants/vio, each a vCenter object name other than '.' and '..'"
        )
    return value


def _compute_cluster_name(value: str) -> str:
    if not cluster_slug(value):
        raise ValueError(
            f"compute cluster name {excerpt(value)} has no letter or digit, so it gives no service name "
            "(nova-compute-<name in lower case>)"
        )
    return value


def _regex(value: str) -> str:
    if len(value) > TEXT_MAX:
        raise ValueError(f"the regular expression has {len(value)} characters; at most {TEXT_MAX}")
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"not a valid regular expression: {error}") from None
    return value


def _nfs_volume(value: str) -> str:
    match = NFS_RE.fullmatch(value)
    problem = None
    if not match:
        problem = "it is not host:/path"
    elif not _full(HOSTNAME_RE, match["host"]):
        problem = f"{excerpt(match['host'])} is not a host name or IPv4 address"
    elif ".." in match["path"].split("/"):
        problem = "its path contains '..'"
    if problem:
        raise ValueError(f"{excerpt(value)} is not an NFS volume like 10.0.0.5:/vio_backup ({problem})")
    return value


def _path_text(value: object) -> object:
    """Rules for a path as written: one line, not empty, not longer than PATH_MAX."""
    if isinstance(value, str):
        _single_line(value)
        if not value:
            raise ValueError("the path is empty")
        if len(value) > PATH_MAX:
            raise ValueError(f"the path has {len(value)} characters; at most {PATH_MAX}")
    return value


def _absolute(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(f"{path_excerpt(value)} is not an absolute path; write it from /")
    return value


HostName = Annotated[str, AfterValidator(_single_line), AfterValidator(_host_name)]
DnsName = Annotated[str, AfterValidator(_single_line), AfterValidator(_dns_name)]
PosixUser = Annotated[str, AfterValidator(_single_line), AfterValidator(_posix_user)]
OpenStackName = Annotated[str, AfterValidator(_single_line), AfterValidator(_openstack_name)]
RegionName = Annotated[str, AfterValidator(_single_line), AfterValidator(_region)]
VCenterName = Annotated[str, AfterValidator(_single_line), AfterValidator(_vcenter_name)]
VCenterUser = Annotated[str, AfterValidator(_single_line), AfterValidator(_vcenter_user)]
VCenterFolder = Annotated[str, AfterValidator(_single_line), AfterValidator(_vcenter_folder)]
ClusterName = Annotated[VCenterName, AfterValidator(_compute_cluster_name)]
RegexText = Annotated[str, AfterValidator(_single_line), AfterValidator(_regex)]
NfsVolume = Annotated[str, AfterValidator(_single_line), AfterValidator(_nfs_volume)]
SecretName = Annotated[str, AfterValidator(_single_line), Field(pattern=r"^[a-z][a-z0-9_]*$")]
DeploymentName = Annotated[str, AfterValidator(_single_line), Field(pattern=NAME_PATTERN)]
# Paths of PEM files viocli reads (their content is checked in checks.py) and of custom.yml.
AbsoluteFile = Annotated[Path, BeforeValidator(_path_text), AfterValidator(_absolute)]
FilePath = Annotated[Path, BeforeValidator(_path_text)]


@dataclass(frozen=True)
class IpRange:
    """An inclusive range of IPv4 addresses, written ``first-last`` or as a single address."""

    first: IPv4Address
    last: IPv4Address

    def __iter__(self):
        for value in range(int(self.first), int(self.last) + 1):
            yield IPv4Address(value)

    def __len__(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and int(self.first) <= int(address) <= int(self.last)

    def overlap(self, other: IpRange) -> int:
        """How many addresses this range shares with ``other``."""
        return max(0, min(int(self.last), int(other.last)) - max(int(self.first), int(other.first)) + 1)

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def _parse_range(value: object) -> IpRange:
    if isinstance(value, IpRange):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected 'FIRST-LAST' or a single address, got {excerpt(value)}")
    _single_line(value)
    first_text, _, last_text = value.partition("-")
    try:
        first = IPv4Address(first_text.strip())
        last = IPv4Address(last_text.strip()) if last_text else first
    except ipaddress.AddressValueError:
        raise ValueError(f"{excerpt(value)} is not an IPv4 address or range like 10.0.0.10-10.0.0.50") from None
    if int(last) < int(first):
        raise ValueError(f"range {excerpt(value)} ends before it starts")
    return IpRange(first, last)


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


IpRangeField = Annotated[IpRange, BeforeValidator(_parse_range)]


class Section(BaseModel):
    """Every section rejects keys it does not know (reported with a did-you-mean)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class VCenterTLS(Section):
    ca_file: AbsoluteFile | None = None
    insecure: bool = False


class VCenter(Section):
    host: HostName
    port: int = Field(443, ge=1, le=65535)
    user: VCenterUser
    password_secret: SecretName = "vcenter_password"
    datacenter: VCenterName
    management_cluster: VCenterName
    datastores: list[VCenterName] = Field(min_length=1)
    folder: VCenterFolder | None = None
    template: VCenterName
    tls: VCenterTLS = VCenterTLS()


class Network(Section):
    portgroup: VCenterName
    cidr: IPv4Network
    gateway: IPv4Address
    dns: list[IPv4Address] = []
    pool: Annotated[list[IpRangeField], BeforeValidator(_as_list), Field(min_length=1)]


class Networks(Section):
    management: Network
    api: Network


class Vips(Section):
    internal: IPv4Address
    external: IPv4Address
    external_fqdn: DnsName | None = None


class RoleSpec(Section):
    count: int | None = Field(None, ge=0, le=64)
    vcpus: int | None = Field(None, ge=1, le=128)
    memory_mb: int | None = Field(None, ge=1024, le=4 * 1024 * 1024)
    disk_gb: int | None = Field(None, ge=10, le=65536)


class Roles(Section):
    loadbalancer: RoleSpec = RoleSpec()
    database: RoleSpec = RoleSpec()
    controller: RoleSpec = RoleSpec()
    compute: RoleSpec = RoleSpec()


class ComputeCluster(Section):
    name: ClusterName
    datastore_regex: RegexText | None = None


class Backup(Section):
    nfs: NfsVolume | None = None
    retention: int = Field(7, ge=1, le=365)


class ExternalTLS(Section):
    cert_file: AbsoluteFile
    key_file: AbsoluteFile
    chain_file: AbsoluteFile | None = None


class OpenStack(Section):
    region: RegionName = "RegionOne"
    admin_user: OpenStackName = "admin"
    admin_project: OpenStackName = "admin"
    api_workers: int | None = Field(None, ge=1, le=64)
    ntp_servers: list[HostName] = []
    debug: bool = False


class Inventory(Section):
    """A whole deployment."""

    name: DeploymentName
    mode: Literal["ha", "compact", "tiny"]
    ssh_user: PosixUser = "root"
    vcenter: VCenter
    networks: Networks
    vips: Vips
    roles: Roles = Roles()
    compute_clusters: list[ComputeCluster] = Field(min_length=1)
    backup: Backup = Backup()
    external_tls: ExternalTLS | None = None
    # TLS inside the control plane: the internal VIP, MariaDB and RabbitMQ (viocli/ops/internal_tls.py).
    internal_tls: bool = False
    openstack: OpenStack = OpenStack()
    custom_file: FilePath | None = None
