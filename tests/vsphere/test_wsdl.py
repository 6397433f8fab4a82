"""The vSphere WSDL the simulator serves, used as suds uses it (suds is what oslo.vmware, and so OpenStack's
VMware drivers, build their requests and read their answers with), and the simulator fixes those drivers need."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.vsphere.instances import clone_instance_vm
from viocli.lab import simulator, vim_wsdl
from viocli.lab.control import cache_dir

pytestmark = pytest.mark.vsphere

suds = pytest.importorskip("suds", reason="suds-community (the test extra) is not installed")

from suds.client import Client  # noqa: E402
from suds.plugin import MessagePlugin  # noqa: E402
from suds.transport.http import HttpTransport  # noqa: E402

CLUSTERS = {simulator.MGMT_CLUSTER, *simulator.COMPUTE_CLUSTERS}
VM_UUID = "0a1b2c3d-0000-4000-8000-00000000cafe"


class VerifiedTransport(HttpTransport):
    """suds' urllib transport with the server certificate verified against the lab CA."""

    def __init__(self, ca_file: str = "") -> None:
        super().__init__()
        self.ca_file = ca_file

    def u2handlers(self) -> list[Any]:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        return [*super().u2handlers(), urllib.request.HTTPSHandler(context=context)]


class PruneEmpty(MessagePlugin):
    """Drop elements left empty, as oslo.vmware's plugin does (suds writes one for every unset field)."""

    def marshalled(self, context: Any) -> None:
        self.prune(context.envelope)

    def prune(self, element: Any) -> None:
        for child in list(element.children):
            self.prune(child)
            if child.isempty(False):
                element.children.remove(child)


_parsed: list[Client] = []  # parsing the WSDL takes seconds: one client, pointed at each new simulator


def suds_client(handle: simulator.SimulatorHandle) -> Client:
    """A suds client for this simulator, with no session yet (the WSDL is loaded from the first simulator)."""
    transport = VerifiedTransport(str(handle.ca_file))
    if not _parsed:
        _parsed.append(Client(handle.wsdl_url, location=handle.url, transport=transport, plugins=[PruneEmpty()]))
    _parsed[0].set_options(location=handle.url, transport=transport)
    return _parsed[0]


def moref(client: Client, kind: str, value: str) -> Any:
    ref = client.factory.create("ns0:ManagedObjectReference")
    ref._type, ref.value = kind, value
    return ref


def logged_in(handle: simulator.SimulatorHandle) -> tuple[Client, Any]:
    """A client logged in as the lab's administrator, and the ServiceContent."""
    client = suds_client(handle)
    content = client.service.RetrieveServiceContent(moref(client, "ServiceInstance", "ServiceInstance"))
    client.service.Login(
        content.sessionManager, userName=handle.username, password=simulator.read_password(handle.password_file)
    )
    return client, content


def retrieve(client: Client, content: Any, kind: str, paths: list[str], start: Any, select: list[Any]) -> list[Any]:
    """RetrievePropertiesEx of ``paths`` of the ``kind`` objects ``select`` reaches from ``start``."""
    factory = client.factory
    prop = factory.create("ns0:PropertySpec")
    prop.type, prop.pathSet = kind, paths
    obj = factory.create("ns0:ObjectSpec")
    obj.obj, obj.skip, obj.selectSet = start, False, select
    spec = factory.create("ns0:PropertyFilterSpec")
    spec.propSet, spec.objectSet = [prop], [obj]
    result = client.service.RetrievePropertiesEx(
        content.propertyCollector, specSet=[spec], options=factory.create("ns0:RetrieveOptions")
    )
    return list(result.objects) if result else []


def traversal(client: Client, name: str, kind: str, path: str, select: list[str | Any]) -> Any:
    spec = client.factory.create("ns0:TraversalSpec")
    spec.name, spec.type, spec.path, spec.skip = name, kind, path, False
    spec.selectSet = [by_name(client, s) if isinstance(s, str) else s for s in select]
    return spec


def by_name(client: Client, name: str) -> Any:
    spec = client.factory.create("ns0:SelectionSpec")
    spec.name = name
    return spec


def recursive_traversal(client: Client) -> Any:
    """oslo.vmware's traversal of the whole inventory from the root folder (vim_util.get_objects)."""
    pools = ["rp_to_rp", "rp_to_vm"]
    return traversal(
        client,
        "visitFolders",
        "Folder",
        "childEntity",
        [
            "visitFolders",
            traversal(client, "dc_to_hf", "Datacenter", "hostFolder", ["visitFolders"]),
            traversal(client, "dc_to_vmf", "Datacenter", "vmFolder", ["visitFolders"]),
            traversal(client, "h_to_vm", "HostSystem", "vm", ["visitFolders"]),
            traversal(client, "ccr_to_h", "ClusterComputeResource", "host", []),
            traversal(client, "cr_to_rp", "ComputeResource", "resourcePool", pools),
            traversal(client, "rp_to_rp", "ResourcePool", "resourcePool", pools),
            traversal(client, "rp_to_vm", "ResourcePool", "vm", pools),
        ],
    )


def props(content: Any) -> dict[str, Any]:
    return {p.name: p.val for p in getattr(content, "propSet", [])}


def fault_types(error: Exception) -> list[str]:
    detail = error.document.childAtPath("/Envelope/Body/Fault/detail")
    return [child.get("type") for child in detail.getChildren()]


def https_get(url: str, ca_file: Path) -> tuple[int, str, bytes]:
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], b""


def test_the_wsdl_is_served_without_a_session(vcsim: simulator.SimulatorHandle) -> None:
    generated = vim_wsdl.generate()
    for name in vim_wsdl.FILES:
        status, kind, body = https_get(f"{vcsim.url}/{name}", vcsim.ca_file)
        assert (status, kind) == (200, "text/xml; charset=utf-8")
        assert body == generated[name]
    assert https_get(f"{vcsim.url}/other.wsdl", vcsim.ca_file)[0] == 404
    assert https_get(f"{vcsim.url.removesuffix('/sdk')}/{vim_wsdl.SERVICE_WSDL}", vcsim.ca_file)[0] == 404


def test_suds_logs_in_and_reads_the_lab_clusters(vcsim: simulator.SimulatorHandle) -> None:
    client = suds_client(vcsim)
    content = client.service.RetrieveServiceContent(moref(client, "ServiceInstance", "ServiceInstance"))
    assert content.about.apiType == "VirtualCenter"
    assert content.sessionManager._type == "SessionManager"
    with pytest.raises(suds.WebFault) as refused:
        client.service.Login(content.sessionManager, userName=vcsim.username, password="not-the-password")
    assert fault_types(refused.value) == ["InvalidLogin"]

    session = client.service.Login(
        content.sessionManager, userName=vcsim.username, password=simulator.read_password(vcsim.password_file)
    )
    assert session.userName == vcsim.username
    view = client.service.CreateContainerView(
        content.viewManager, container=content.rootFolder, type=["ClusterComputeResource"], recursive=True
    )
    clusters = retrieve(
        client, content, "ClusterComputeResource", ["name", "host", "summary"], view,
        [traversal(client, "view", "ContainerView", "view", [])],
    )  # fmt: skip
    found = {props(c)["name"]: props(c) for c in clusters}
    assert set(found) == CLUSTERS
    compute = found["vio-compute-a"]
    assert [h._type for h in compute["host"].ManagedObjectReference] == ["HostSystem", "HostSystem"]
    assert compute["summary"].numHosts == 2 and compute["summary"].totalMemory > 0


def test_recursive_traversal_and_keyed_properties(vcsim: simulator.SimulatorHandle) -> None:
    """oslo.vmware's whole-inventory traversal with a VM in a resource pool, reading keyed extraConfig."""
    clone_instance_vm(vcsim, "instance-1", VM_UUID, power_on=False)

    client, content = logged_in(vcsim)
    paths = ["name", 'config.extraConfig["nvp.vm-uuid"]', 'config.extraConfig["not.there"]']
    vms = retrieve(client, content, "VirtualMachine", paths, content.rootFolder, [recursive_traversal(client)])
    found = {props(vm)["name"]: props(vm) for vm in vms}
    assert set(found) == {simulator.TEMPLATE, "instance-1"}  # each once, though reached by two paths
    assert all(not getattr(vm, "missingSet", None) for vm in vms)
    keyed = found["instance-1"]['config.extraConfig["nvp.vm-uuid"]']
    assert (keyed.key, keyed.value) == ("nvp.vm-uuid", VM_UUID)
    assert set(found[simulator.TEMPLATE]) == {"name"}

    hosts = retrieve(client, content, "HostSystem", ["name"], content.rootFolder, [recursive_traversal(client)])
    assert len(hosts) == 7


def test_extensions_register_with_a_zoneless_timestamp(vcsim: simulator.SimulatorHandle) -> None:
    """nova-compute and cinder-volume register themselves as oslo.vmware does it (utcnow().isoformat())."""
    client, content = logged_in(vcsim)
    manager = content.extensionManager
    assert client.service.FindExtension(manager, extensionKey="org.openstack.compute") is None
    extension = client.factory.create("ns0:Extension")
    extension.key, extension.version = "org.openstack.compute", "1.0"
    entity = client.factory.create("ns0:ExtManagedEntityInfo")
    entity.type = "instance"
    extension.managedEntityInfo = [entity]
    description = client.factory.create("ns0:Description")
    description.label, description.summary = "OpenStack", "OpenStack services"
    extension.description = description
    extension.lastHeartbeatTime = "2024-05-06T07:08:09.123456"
    client.service.RegisterExtension(manager, extension=extension)

    found = client.service.FindExtension(manager, extensionKey="org.openstack.compute")
    assert (found.key, found.description.label) == ("org.openstack.compute", "OpenStack")
    assert found.lastHeartbeatTime.isoformat().startswith("2024-05-06T07:08:09.123456")
    assert found.lastHeartbeatTime.utcoffset().total_seconds() == 0
    with pytest.raises(suds.WebFault) as again:
        client.service.RegisterExtension(manager, extension=extension)
    assert fault_types(again.value) == ["InvalidArgument"]
    client.service.UnregisterExtension(manager, extensionKey="org.openstack.compute")
    assert client.service.FindExtension(manager, extensionKey="org.openstack.compute") is None


def test_vms_are_found_by_instance_uuid(vcsim: simulator.SimulatorHandle) -> None:
    client, content = logged_in(vcsim)
    (template,) = retrieve(
        client, content, "VirtualMachine", ["config.instanceUuid", "config.uuid"], content.rootFolder,
        [recursive_traversal(client)],
    )  # fmt: skip
    uuids = props(template)
    index = content.searchIndex
    instance_uuid = uuids["config.instanceUuid"]
    by_instance = client.service.FindAllByUuid(index, uuid=instance_uuid, vmSearch=True, instanceUuid=True)
    assert [ref.value for ref in by_instance] == [template.obj.value]
    by_bios = client.service.FindAllByUuid(index, uuid=uuids["config.uuid"], vmSearch=True)
    assert [ref.value for ref in by_bios] == [template.obj.value]
    assert not client.service.FindAllByUuid(index, uuid=VM_UUID, vmSearch=True, instanceUuid=True)


def test_datastores_are_shared_vmfs(vcsim: simulator.SimulatorHandle) -> None:
    client, content = logged_in(vcsim)
    datastores = retrieve(
        client, content, "Datastore", ["summary", "info"], content.rootFolder,
        [
            traversal(client, "visitFolders", "Folder", "childEntity", ["visitFolders", "dc_to_ds"]),
            traversal(client, "dc_to_ds", "Datacenter", "datastoreFolder", ["visitFolders"]),
        ],
    )  # fmt: skip
    summaries = {props(ds)["summary"].name: props(ds) for ds in datastores}
    assert set(summaries) == set(simulator.DATASTORES)
    for ds in summaries.values():
        assert ds["summary"].type == "VMFS" and ds["summary"].multipleHostAccess and ds["summary"].accessible
        assert ds["info"].__class__.__name__ == "VmfsDatastoreInfo" and ds["info"].vmfs.local is False


def test_also_ports_serve_the_same(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        extra = probe.getsockname()[1]
    handle = simulator.start(simulator.build(cache_dir()), tmp_path, "127.0.0.1", 0, also_ports=(extra,))
    try:
        status, _, body = https_get(f"https://127.0.0.1:{extra}/sdk/{vim_wsdl.SERVICE_WSDL}", handle.ca_file)
        assert status == 200 and body == vim_wsdl.generate()[vim_wsdl.SERVICE_WSDL]
        client = suds_client(handle)
        client.set_options(location=f"https://127.0.0.1:{extra}/sdk")
        content = client.service.RetrieveServiceContent(moref(client, "ServiceInstance", "ServiceInstance"))
        assert content.about.apiType == "VirtualCenter"
    finally:
        simulator.stop(handle.pid)
    assert "also serving https://127.0.0.1:" in (tmp_path / simulator.LOG_NAME).read_text()
