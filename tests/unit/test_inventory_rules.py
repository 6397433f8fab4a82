"""Every inventory field has a rule that fits it, proven through ``viocli inventory validate``.

Each value here is one an operator (or a copy-paste) could write; a rejected one gives exit 2 and a
message naming the key, its line and what to write instead, and never lets a control character
or a file's content through to the output.
"""

from __future__ import annotations

import os
import re
import shutil
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from jinja2.nativetypes import NativeEnvironment
from pydantic import BaseModel

from viocli import pki
from viocli.cli.main import cli
from viocli.inventory.model import Inventory, cluster_slug
from viocli.inventory.problems import dotted

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "inventory"
CONTROL = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"]
RAW_CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")

Edit = Callable[[dict], None]


def write_inventory(folder: Path, edit: Edit | None = None, base: str = "ha") -> Path:
    """An example inventory with ``edit`` applied, written into ``folder``."""
    data = yaml.safe_load((EXAMPLES / f"{base}.yml").read_text())
    if edit:
        edit(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{base}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def validate(path: Path) -> Result:
    result = CliRunner().invoke(cli, ["inventory", "validate", "-i", str(path)])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert not RAW_CONTROL_RE.search(result.output), f"raw control character in output: {result.output!r}"
    return result


def set_at(data: dict, path: tuple, value: Any) -> None:
    """Set ``data[path]``, creating mappings on the way (external_tls is not in the examples)."""
    node: Any = data
    for part in path[:-1]:
        if isinstance(node, dict) and node.get(part) is None:
            node[part] = (
                {"cert_file": "/etc/tls/api.crt", "key_file": "/etc/tls/api.key"} if part == "external_tls" else {}
            )
        node = node[part]
    node[path[-1]] = value


def _leaf(annotation: Any) -> tuple[Any, bool]:
    """The type under Annotated/Optional/list, and whether a list was on the way."""
    in_list = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        elif origin is list:
            in_list, annotation = True, typing.get_args(annotation)[0]
        else:
            return annotation, in_list


def string_fields(model: type[BaseModel] = Inventory, prefix: tuple = ()) -> list[tuple[tuple, bool, bool]]:
    """Every field of the schema that holds text: ``(path, is a list of strings, is a path)``."""
    found = []
    for name, info in model.model_fields.items():
        leaf, in_list = _leaf(info.annotation)
        if isinstance(leaf, type) and issubclass(leaf, BaseModel):
            found += string_fields(leaf, (*prefix, name, 0) if in_list else (*prefix, name))
        elif leaf in (str, Path):
            found.append(((*prefix, name), in_list, leaf is Path))
    return found


STRING_FIELDS = string_fields()


def test_the_field_walk_sees_every_kind_of_string_field() -> None:
    paths = {path for path, _, _ in STRING_FIELDS}
    expected = {
        ("name",),
        ("ssh_user",),
        ("vcenter", "user"),
        ("vcenter", "datastores"),
        ("vcenter", "folder"),
        ("vcenter", "tls", "ca_file"),
        ("networks", "management", "portgroup"),
        ("compute_clusters", 0, "name"),
        ("compute_clusters", 0, "datastore_regex"),
        ("backup", "nfs"),
        ("external_tls", "chain_file"),
        ("openstack", "ntp_servers"),
        ("openstack", "admin_project"),
        ("custom_file",),
    }
    assert expected <= paths, expected - paths
    assert len(paths) >= 25


@pytest.mark.parametrize(
    ("path", "in_list", "is_path"), STRING_FIELDS, ids=[dotted(path) for path, _, _ in STRING_FIELDS]
)
def test_every_string_field_refuses_control_characters(
    path: tuple, in_list: bool, is_path: bool, tmp_path: Path, viocli_env: Path
) -> None:
    character = CONTROL[STRING_FIELDS.index((path, in_list, is_path)) % len(CONTROL)]
    value = f"{'/' if is_path else ''}vio{character}allow all"
    inventory = write_inventory(tmp_path, lambda data: set_at(data, path, [value] if in_list else value))
    result = validate(inventory)
    assert result.exit_code == 2, result.output
    where = dotted((*path, 0) if in_list else path)
    assert f"error: {where}: " in result.stderr, result.stderr
    assert "contains a control character" in result.stderr or "should match pattern" in result.stderr


@pytest.mark.parametrize("character", CONTROL, ids=[repr(c) for c in CONTROL])
def test_each_control_character_is_named_escaped(character: str, tmp_path: Path, viocli_env: Path) -> None:
    edit: Edit = lambda data: set_at(data, ("openstack", "ntp_servers"), ["10.20.0.2", f"a{character}allow all"])  # noqa: E731
    result = validate(write_inventory(tmp_path, edit))
    assert result.exit_code == 2
    assert f"openstack.ntp_servers[1]: {f'a{character}allow all'!r} contains a control character" in result.stderr
    assert f"({character!r} at character 2)" in result.stderr


def test_a_pool_range_with_a_newline_is_refused(tmp_path: Path, viocli_env: Path) -> None:
    edit: Edit = lambda data: set_at(data, ("networks", "api", "pool"), ["192.168.50.100-\n192.168.50.119"])  # noqa: E731
    result = validate(write_inventory(tmp_path, edit))
    assert result.exit_code == 2
    assert "networks.api.pool[0]: " in result.stderr and "contains a control character" in result.stderr


BAD = [
    (("ssh_user",), "-oProxyCommand=touch /tmp/x", "is not a POSIX user name"),
    (("ssh_user",), "Root", "is not a POSIX user name"),
    (("ssh_user",), "a" * 33, "is not a POSIX user name"),
    (("ssh_user",), "vio admin", "is not a POSIX user name"),
    (("openstack", "admin_user"), "cloud admin", "is not an OpenStack name"),
    (("openstack", "admin_user"), "-admin", "is not an OpenStack name"),
    (("openstack", "admin_user"), "a" * 65, "is not an OpenStack name"),
    (("openstack", "admin_project"), "admin;rm", "is not an OpenStack name"),
    (("openstack", "region"), "-RegionOne", "is not a region name"),
    (("openstack", "region"), "Region One", "is not a region name"),
    (("openstack", "region"), "Region@One", "is not a region name"),
    (("vcenter", "host"), "-vcenter", "is not a host name or IP address"),
    (("vcenter", "host"), "vcenter.example.com:443", "is not a host name or IP address"),
    (("vips", "external_fqdn"), "openstack_api.example.com", "is not a valid DNS name"),
    (("openstack", "ntp_servers"), ["-ntp.example.com"], "is not a host name or IP address"),
    (("vcenter", "datacenter"), "DC/01", "it contains '/'"),
    (("vcenter", "management_cluster"), "mgmt\\cluster", "it contains '\\\\'"),
    (("vcenter", "template"), "vio%template", "it contains '%'"),
    (("vcenter", "datastores"), [" mgmt-ds01"], "it starts or ends with a space"),
    (("vcenter", "datastores"), ["mgmt-ds01 "], "it starts or ends with a space"),
    (("networks", "management", "portgroup"), "-vio-mgmt", "it starts with '-'"),
    (("networks", "api", "portgroup"), "p" * 81, "it has 81 characters, not 1 to 80"),
    (("compute_clusters", 0, "name"), "", "it has 0 characters, not 1 to 80"),
    (("compute_clusters", 0, "name"), "-- --", "it starts with '-'"),
    (("compute_clusters", 0, "name"), "__", "has no letter or digit"),
    (("vcenter", "user"), "-administrator", "is not a vCenter user name"),
    (("vcenter", "user"), "administrator @vsphere.local", "is not a vCenter user name"),
    (("vcenter", "folder"), "../x", "it contains the folder name '..'"),
    (("vcenter", "folder"), "vio/..", "it contains the folder name '..'"),
    (("vcenter", "folder"), "./vio", "it contains the folder name '.'"),
    (("vcenter", "folder"), "/vio", "it starts with '/'"),
    (("vcenter", "folder"), "Tenants//vio", "folder name '': it has 0 characters"),
    (("vcenter", "folder"), "Tenants/vio/", "folder name '': it has 0 characters"),
    (("vcenter", "folder"), "Tenants/-vio", "folder name '-vio': it starts with '-'"),
    (("backup", "nfs"), "nfs_server:/vio_backup", "'nfs_server' is not a host name or IPv4 address"),
    (("backup", "nfs"), "10.20.0.5:/vio_backup/../../etc", "its path contains '..'"),
    (("backup", "nfs"), "10.20.0.5:vio_backup", "it is not host:/path"),
    (("compute_clusters", 0, "datastore_regex"), "x" * 257, "at most 256"),
    (("vcenter", "tls", "ca_file"), "certs/ca.pem", "is not an absolute path"),
    (("external_tls", "key_file"), "api.key", "is not an absolute path"),
    (("custom_file",), "", "the path is empty"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[f"{dotted(p)}={v!r:.30}" for p, v, _ in BAD])
def test_a_value_outside_its_rule_is_refused(
    path: tuple, value: Any, message: str, tmp_path: Path, viocli_env: Path
) -> None:
    result = validate(write_inventory(tmp_path, lambda data: set_at(data, path, value)))
    assert result.exit_code == 2, result.output
    where = dotted((*path, 0) if isinstance(value, list) else path)
    assert f"error: {where}: " in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


GOOD = [
    (("ssh_user",), "vio_admin"),
    (("ssh_user",), "_svc-1"),
    (("openstack", "admin_user"), "cloud.admin@corp-1"),
    (("openstack", "admin_project"), "Project_1"),
    (("openstack", "region"), "eu-west-1.a"),
    (("openstack", "ntp_servers"), ["10.20.0.2", "ntp.example.com"]),
    (("vcenter", "host"), "vcenter-01.example.com"),
    (("vcenter", "user"), "DOMAIN\\vio.admin"),
    (("vcenter", "datacenter"), "Datacenter (Zürich) 1"),
    (("vcenter", "folder"), "Tenants/VIO prod/vio-prod"),
    (("vcenter", "datastores"), ["ds 1 (ssd)", "ds_2", "ds-3"]),
    (("compute_clusters", 0, "name"), "Compute Cluster #1"),
    (("backup", "nfs"), "nfs-01.example.com:/exports/vio_backup"),
]


@pytest.mark.parametrize(("path", "value"), GOOD, ids=[f"{dotted(p)}={v!r:.30}" for p, v in GOOD])
def test_a_value_inside_its_rule_is_accepted(path: tuple, value: Any, tmp_path: Path, viocli_env: Path) -> None:
    result = validate(write_inventory(tmp_path, lambda data: set_at(data, path, value)))
    assert result.exit_code == 0, result.output


def test_cluster_names_that_give_one_service_name_are_both_named(tmp_path: Path, viocli_env: Path) -> None:
    def edit(data: dict) -> None:
        data["compute_clusters"] = [{"name": "Cluster A"}, {"name": "cluster-a"}, {"name": "cluster-b"}]
        data["roles"].pop("compute", None)

    result = validate(write_inventory(tmp_path, edit))
    assert result.exit_code == 2, result.output
    assert (
        "compute_clusters[1].name: compute clusters 'Cluster A' (compute_clusters[0]) and 'cluster-a'" in result.stderr
    )
    assert "would both run as the service nova-compute-cluster-a" in result.stderr
    assert "1 problem found" in result.stderr


def _role_slugs(names: list[str]) -> list[str]:
    """The nova_compute role's own Jinja expression, rendered with Ansible's filters."""
    from ansible.plugins.filter.core import FilterModule

    tasks = yaml.safe_load((REPO / "playbooks/roles/nova_compute/tasks/config.yml").read_text())
    expression = next(task["vars"]["cluster_slugs"] for task in tasks if "cluster_slugs" in task.get("vars", {}))
    environment = NativeEnvironment()
    environment.filters.update(FilterModule().filters())
    return environment.from_string(expression).render(compute_clusters=[{"name": name} for name in names])


def test_the_slug_is_the_one_the_nova_compute_role_computes() -> None:
    names = ["Cluster A", "cluster-a", "--Gold  Cluster__2--", "Zürich", "ÉCLAIR 9", "a/b\\c%d", "x"]
    assert _role_slugs(names) == [cluster_slug(name) for name in names]
    assert cluster_slug("Cluster A") == cluster_slug("cluster-a") == "cluster-a"


@pytest.fixture
def pem_files(tmp_path: Path) -> pki.CertFiles:
    return pki.ensure_server_cert(
        pki.CertFiles(tmp_path / "ca.pem", tmp_path / "ca.key", tmp_path / "api.pem", tmp_path / "api.key"),
        ["openstack.example.com"],
        ca_name="Test CA",
        cert_name="openstack.example.com",
    )


def test_pem_files_that_hold_what_they_should_are_accepted(
    pem_files: pki.CertFiles, tmp_path: Path, viocli_env: Path
) -> None:
    def edit(data: dict) -> None:
        data["vcenter"]["tls"] = {"ca_file": str(pem_files.ca_cert)}
        data["external_tls"] = {
            "cert_file": str(pem_files.cert),
            "key_file": str(pem_files.key),
            "chain_file": str(pem_files.ca_cert),
        }

    result = validate(write_inventory(tmp_path / "inv", edit))
    assert result.exit_code == 0, result.output


SHADOW = "root:$6$Sa1tSa1t$Q2hhbmdlTWVQbGVhc2VUaGlzSXNBSGFzaA:20228:0:99999:7:::\n"


@pytest.mark.parametrize("field", ["ca_file", "cert_file", "key_file", "chain_file"])
def test_a_file_that_is_not_pem_is_refused_without_quoting_it(
    field: str, pem_files: pki.CertFiles, tmp_path: Path, viocli_env: Path
) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW * 20)
    shadow.chmod(0o600)

    def edit(data: dict) -> None:
        data["external_tls"] = {"cert_file": str(pem_files.cert), "key_file": str(pem_files.key)}
        if field == "ca_file":
            data["vcenter"]["tls"] = {"ca_file": str(shadow)}
        else:
            data["external_tls"][field] = str(shadow)

    result = validate(write_inventory(tmp_path / "inv", edit))
    assert result.exit_code == 2, result.output
    wanted = "a PEM private key" if field == "key_file" else "a PEM certificate"
    assert f"{field}: file '{shadow}' does not hold {wanted}" in result.stderr, result.stderr
    assert "$6$" not in result.output and "root:" not in result.output


def test_the_real_shadow_file_as_ca_file_is_not_printed(tmp_path: Path, viocli_env: Path) -> None:
    shadow = Path("/etc/shadow")
    if not os.access(shadow, os.R_OK):
        pytest.skip("needs root to read /etc/shadow")
    edit: Edit = lambda data: set_at(data, ("vcenter", "tls", "ca_file"), str(shadow))  # noqa: E731
    result = validate(write_inventory(tmp_path, edit))
    assert result.exit_code == 2
    assert "vcenter.tls.ca_file: file '/etc/shadow' does not hold a PEM certificate" in result.stderr
    first_line = shadow.read_text().splitlines()[0]
    assert first_line.split(":")[1] not in result.output


@pytest.mark.parametrize("kind", ["fifo", "directory", "device", "too-big", "missing"])
def test_a_ca_file_that_is_not_a_small_regular_file_is_refused_at_once(
    kind: str, tmp_path: Path, viocli_env: Path
) -> None:
    target = tmp_path / "ca.pem"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    elif kind == "device":
        target = Path("/dev/zero")
    elif kind == "too-big":
        target.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * (1024 * 1024))
    edit: Edit = lambda data: set_at(data, ("vcenter", "tls", "ca_file"), str(target))  # noqa: E731
    result = validate(write_inventory(tmp_path / "inv", edit))
    assert result.exit_code == 2
    reason = {
        "fifo": "is a FIFO (named pipe), not a regular file",
        "directory": "is a directory, not a regular file",
        "device": "is a character device, not a regular file",
        "too-big": "more than the 1 MiB limit",
        "missing": "was not found",
    }[kind]
    assert f"vcenter.tls.ca_file: file '{target}' " in result.stderr and reason in result.stderr, result.stderr


def test_custom_file_may_be_relative_but_must_be_a_regular_file(tmp_path: Path, viocli_env: Path) -> None:
    folder = tmp_path / "inv"
    folder.mkdir()
    os.mkfifo(folder / "custom.yml")
    result = validate(write_inventory(folder, lambda data: data.update(custom_file="custom.yml")))
    assert result.exit_code == 2
    assert "custom_file: file 'custom.yml' (relative to the inventory's directory) is not a regular file" in (
        result.stderr
    )
    (folder / "custom.yml").unlink()
    (folder / "custom.yml").write_text("cpu_allocation_ratio: 4.0\n")
    assert validate(write_inventory(folder, lambda data: data.update(custom_file="custom.yml"))).exit_code == 0


@pytest.mark.parametrize("name", ["lab-ha", "lab-tiny"])
def test_the_lab_inventories_are_valid_once_the_lab_ca_exists(
    name: str, pem_files: pki.CertFiles, tmp_path: Path, viocli_env: Path
) -> None:
    # As tests/vsphere does: the lab's CA exists once the lab runs; here a stand-in one does.
    folder = tmp_path / "lab"
    folder.mkdir()
    shutil.copy(EXAMPLES / "custom-lab.yml", folder / "custom-lab.yml")
    text = (EXAMPLES / f"{name}.yml").read_text().replace("/var/lib/viocli/lab/vcsim-ca.pem", str(pem_files.ca_cert))
    (folder / f"{name}.yml").write_text(text)
    result = validate(folder / f"{name}.yml")
    assert result.exit_code == 0, result.output
