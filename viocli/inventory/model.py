"""The inventory file's schema: what each key is, its type and its default.

Only shape and per-field rules live here; rules across fields (addresses, counts by mode) are in
:mod:`viocli.inventory.checks` so that all of them are reported together.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from viocli.names import NAME_PATTERN

HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
NFS_RE = re.compile(r"^(?P<host>[^:/\s]+):(?P<path>/[^\s]*)$")


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
        raise ValueError(f"expected 'FIRST-LAST' or a single address, got {value!r}")
    first_text, _, last_text = value.partition("-")
    try:
        first = IPv4Address(first_text.strip())
        last = IPv4Address(last_text.strip()) if last_text else first
    except ipaddress.AddressValueError:
        raise ValueError(f"{value!r} is not an IPv4 address or range like 10.0.0.10-10.0.0.50") from None
    if int(last) < int(first):
        raise ValueError(f"range {value!r} ends before it starts")
    return IpRange(first, last)


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


IpRangeField = Annotated[IpRange, BeforeValidator(_parse_range)]


class Section(BaseModel):
    """Every section rejects keys it does not know (reported with a did-you-mean)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class VCenterTLS(Section):
    ca_file: Path | None = None
    insecure: bool = False


class VCenter(Section):
    host: str
    port: int = Field(443, ge=1, le=65535)
    user: str = Field(min_length=1)
    password_secret: str = Field("vcenter_password", pattern=r"^[a-z][a-z0-9_]*$")
    datacenter: str = Field(min_length=1)
    management_cluster: str = Field(min_length=1)
    datastores: list[str] = Field(min_length=1)
    folder: str | None = None
    template: str = Field(min_length=1)
    tls: VCenterTLS = VCenterTLS()

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not HOSTNAME_RE.match(value):
            raise ValueError(f"{value!r} is not a host name or IP address")
        return value


class Network(Section):
    portgroup: str = Field(min_length=1)
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
    external_fqdn: str | None = None

    @field_validator("external_fqdn")
    @classmethod
    def _fqdn(cls, value: str | None) -> str | None:
        if value is not None and not HOSTNAME_RE.match(value):
            raise ValueError(f"{value!r} is not a valid DNS name")
        return value


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
    name: str = Field(min_length=1)
    datastore_regex: str | None = None

    @field_validator("datastore_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
        return value


class Backup(Section):
    nfs: str | None = None
    retention: int = Field(7, ge=1, le=365)

    @field_validator("nfs")
    @classmethod
    def _nfs(cls, value: str | None) -> str | None:
        if value is not None and not NFS_RE.match(value):
            raise ValueError(f"{value!r} is not an NFS volume like 10.0.0.5:/vio_backup")
        return value


class ExternalTLS(Section):
    cert_file: Path
    key_file: Path
    chain_file: Path | None = None


class OpenStack(Section):
    region: str = Field("RegionOne", min_length=1)
    admin_user: str = Field("admin", min_length=1)
    admin_project: str = Field("admin", min_length=1)
    api_workers: int | None = Field(None, ge=1, le=64)
    ntp_servers: list[str] = []
    debug: bool = False


class Inventory(Section):
    """A whole deployment."""

    name: str = Field(pattern=NAME_PATTERN)
    mode: Literal["ha", "compact", "tiny"]
    ssh_user: str = Field("root", min_length=1)
    vcenter: VCenter
    networks: Networks
    vips: Vips
    roles: Roles = Roles()
    compute_clusters: list[ComputeCluster] = Field(min_length=1)
    backup: Backup = Backup()
    external_tls: ExternalTLS | None = None
    openstack: OpenStack = OpenStack()
    custom_file: Path | None = None
