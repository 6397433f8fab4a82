"""The lab's vCenter simulator: build cache, TLS and credentials, the inventory, and vCenter behaviour.

The vsphere tests build the Go program (once; cached under pytest's cache directory) and run it on
127.0.0.1 on a free port, so they need golang-go and golang-github-vmware-govmomi-dev but no bridge and
no root. Everything goes through pyvmomi with TLS verified against the lab CA.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from viocli.errors import OperationFailed, Refused
from viocli.lab import simulator
from viocli.vsphere.tasks import wait_for_tasks

HAVE_GO = shutil.which("go") is not None and (simulator.GOVMOMI_SRC / "simulator").is_dir()
needs_go = pytest.mark.skipif(not HAVE_GO, reason="needs golang-go and golang-github-vmware-govmomi-dev")

CLONES = 8
MGMT_NET = "10.203.0.{}"
API_NET = "10.203.1.{}"


# --- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_dir(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build cache that survives test runs when pytest's cache is on."""
    cache = getattr(pytestconfig, "cache", None)
    return cache.mkdir("viocli-vcsim-build") if cache is not None else tmp_path_factory.mktemp("build")


@pytest.fixture(scope="module")
def binary(cache_dir: Path) -> Path:
    return simulator.build(cache_dir)


@pytest.fixture(scope="module")
def vcsim(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[simulator.SimulatorHandle]:
    handle = simulator.start(binary, tmp_path_factory.mktemp("vcsim-lab"), "127.0.0.1", 0)
    yield handle
    simulator.stop(handle.pid)


@pytest.fixture(scope="module")
def si(vcsim: simulator.SimulatorHandle) -> Iterator[Any]:
    from pyVim.connect import Disconnect

    service_instance = simulator.connect(vcsim)
    yield service_instance
    Disconnect(service_instance)


def objects(si: Any, kind: Any) -> dict[str, Any]:
    """Every managed object of one type, by name."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return {obj.name: obj for obj in view.view}
    finally:
        view.Destroy()


def method_name(info: Any) -> str:
    """A TaskInfo's method as vCenter names it on the wire, e.g. CloneVM_Task."""
    name = info.name
    return getattr(getattr(name, "info", None), "wsdlName", None) or getattr(name, "name", str(name))


def backing(si: Any, portgroup: str) -> Any:
    from pyVmomi import vim

    network = objects(si, vim.Network)[portgroup]
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=portgroup, network=network)


def clone_spec(si: Any, name: str, ips: list[str], *, cluster: str = "vio-mgmt", datastore: str = "vio-ds1") -> Any:
    """Clone the template as viocli does: re-back its NIC onto vio-mgmt-pg, add one on vio-api-pg,
    customize the hostname and one fixed IP per NIC; 2 vCPUs and 2 GiB."""
    from pyVmomi import vim

    template = objects(si, vim.VirtualMachine)[simulator.TEMPLATE]
    nic = next(d for d in template.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard))
    nic.backing = backing(si, "vio-mgmt-pg")
    added = vim.vm.device.VirtualVmxnet3(key=-1, backing=backing(si, "vio-api-pg"))
    changes = [
        vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic),
        vim.vm.device.VirtualDeviceSpec(operation="add", device=added),
    ]
    customization = vim.vm.customization.Specification(
        identity=vim.vm.customization.LinuxPrep(hostName=vim.vm.customization.FixedName(name=name), domain="lab"),
        globalIPSettings=vim.vm.customization.GlobalIPSettings(),
        nicSettingMap=[
            vim.vm.customization.AdapterMapping(
                adapter=vim.vm.customization.IPSettings(
                    ip=vim.vm.customization.FixedIp(ipAddress=ip), subnetMask="255.255.255.0"
                )
            )
            for ip in ips
        ],
    )
    location = vim.vm.RelocateSpec(
        pool=objects(si, vim.ClusterComputeResource)[cluster].resourcePool,
        datastore=objects(si, vim.Datastore)[datastore],
    )
    config = vim.vm.ConfigSpec(numCPUs=2, memoryMB=2048, deviceChange=changes)
    return vim.vm.CloneSpec(location=location, config=config, customization=customization, powerOn=False)


def start_clone(si: Any, name: str, spec: Any) -> Any:
    from pyVmomi import vim

    template = objects(si, vim.VirtualMachine)[simulator.TEMPLATE]
    folder = objects(si, vim.Folder)[simulator.VM_FOLDER]
    return template.CloneVM_Task(folder=folder, name=name, spec=spec)


def template_devices(si: Any) -> list[tuple]:
    """The template's devices: key, type, MAC or disk file, port group."""
    from pyVmomi import vim

    template = objects(si, vim.VirtualMachine)[simulator.TEMPLATE]
    return [
        (
            d.key,
            type(d).__name__,
            getattr(d, "macAddress", None) or getattr(d.backing, "fileName", None),
            getattr(d.backing, "deviceName", None),
        )
        for d in template.config.hardware.device
    ]


def wait_failed(si: Any, task: Any) -> Any:
    """Wait for a task expected to fail; return its fault."""
    with pytest.raises(OperationFailed):
        wait_for_tasks(si, [task], timeout=30)
    return task.info.error


# --- build, TLS, credentials (no simulator needed) ----------------------------------------------------


def test_build_key_follows_the_sources_and_versions(tmp_path: Path):
    source = tmp_path / "vcsim"
    shutil.copytree(simulator.SOURCE_DIR, source)
    key = simulator.build_key(source, "go1.19.8", "0.24.2-3")
    assert key == simulator.build_key(source, "go1.19.8", "0.24.2-3")
    (source / "notes.txt").write_text("not Go")
    assert simulator.build_key(source, "go1.19.8", "0.24.2-3") == key
    assert simulator.build_key(source, "go1.21.0", "0.24.2-3") != key
    assert simulator.build_key(source, "go1.19.8", "0.30.0-1") != key
    main = source / "main.go"
    main.write_text(main.read_text() + "\n// changed\n")
    assert simulator.build_key(source, "go1.19.8", "0.24.2-3") != key


def test_build_refuses_without_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Refused) as refused:
        simulator.build(tmp_path / "cache")
    assert "Go is not installed" in refused.value.message
    assert "apt-get install golang-go" in refused.value.hint


@pytest.mark.skipif(shutil.which("go") is None, reason="needs golang-go")
def test_build_refuses_without_govmomi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(simulator, "GOVMOMI_SRC", tmp_path / "missing")
    with pytest.raises(Refused) as refused:
        simulator.build(tmp_path / "cache")
    assert "govmomi" in refused.value.message
    assert "apt-get install golang-github-vmware-govmomi-dev" in refused.value.hint


def test_tls_is_made_once_and_names_the_address(tmp_path: Path):
    from cryptography import x509

    ca, cert, key = simulator.generate_tls(tmp_path, "127.0.0.1")
    assert {p.stat().st_mode & 0o777 for p in (cert, key, tmp_path / simulator.CA_KEY_NAME)} == {0o600}
    assert ca.stat().st_mode & 0o777 == 0o644
    server = x509.load_pem_x509_certificate(cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    context = ssl.create_default_context(cafile=str(ca))
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "viocli lab CA"),),)

    before = {p: p.read_bytes() for p in (ca, cert, key)}
    assert simulator.generate_tls(tmp_path, "127.0.0.1") == (ca, cert, key)
    assert {p: p.read_bytes() for p in (ca, cert, key)} == before

    simulator.generate_tls(tmp_path, "10.203.0.1")  # another address: a new server certificate, same CA
    assert ca.read_bytes() == before[ca]
    assert cert.read_bytes() != before[cert]
    cert.write_text("garbage")
    simulator.generate_tls(tmp_path, "10.203.0.1")
    x509.load_pem_x509_certificate(cert.read_bytes())


def test_credentials_are_made_once(tmp_path: Path):
    user, path = simulator.ensure_credentials(tmp_path)
    assert user == "administrator@vsphere.local"
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    assert lines[0] == user and len(lines[1]) >= 32
    assert simulator.ensure_credentials(tmp_path) == (user, path)
    assert path.read_text().splitlines() == lines
    assert simulator.read_password(path) == lines[1]


# --- the simulator -------------------------------------------------------------------------------------


@pytest.mark.vsphere
@needs_go
def test_build_is_cached(binary: Path, cache_dir: Path, tmp_path: Path):
    started = time.monotonic()
    assert simulator.build(cache_dir) == binary
    assert time.monotonic() - started < 2
    key = simulator.build_key(
        simulator.SOURCE_DIR, simulator.go_version(shutil.which("go")), simulator.govmomi_version()
    )
    assert binary.parent.name == key

    changed = tmp_path / "vcsim"
    shutil.copytree(simulator.SOURCE_DIR, changed)
    with open(changed / "main.go", "a") as main:
        main.write("\n// a change\n")
    rebuilt = simulator.build(cache_dir, changed)  # quick: Go's build cache has the dependencies
    assert rebuilt != binary and rebuilt.is_file() and binary.is_file()


@pytest.mark.vsphere
@needs_go
def test_login_with_tls_verified(vcsim: simulator.SimulatorHandle, si: Any):
    assert vcsim.url == f"https://127.0.0.1:{vcsim.port}/sdk" and vcsim.port != 0
    content = si.RetrieveContent()
    assert content.about.apiType == "VirtualCenter"
    assert content.sessionManager.currentSession.userName == "administrator@vsphere.local"


@pytest.mark.vsphere
@needs_go
def test_a_foreign_ca_is_not_trusted(vcsim: simulator.SimulatorHandle, tmp_path: Path):
    from pyVim.connect import SmartConnect

    other_ca, _, _ = simulator.generate_tls(tmp_path, "127.0.0.1")
    context = ssl.create_default_context(cafile=str(other_ca))
    password = simulator.read_password(vcsim.password_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd=password, sslContext=context)


@pytest.mark.vsphere
@needs_go
def test_a_wrong_password_is_refused(vcsim: simulator.SimulatorHandle):
    from pyVim.connect import SmartConnect
    from pyVmomi import vim

    context = ssl.create_default_context(cafile=str(vcsim.ca_file))
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd="wrong", sslContext=context)
    password = simulator.read_password(vcsim.password_file)
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host=vcsim.host, port=vcsim.port, user="root", pwd=password, sslContext=context)


@pytest.mark.vsphere
@needs_go
def test_no_way_in_without_the_password(vcsim: simulator.SimulatorHandle, si: Any):
    """Token and certificate logins are refused; reads and datastore files need a session."""
    from pyVmomi import SoapStubAdapter, VmomiSupport, vim, vmodl

    context = ssl.create_default_context(cafile=str(vcsim.ca_file))
    saml = (
        '<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion"><saml2:Subject>'
        "<saml2:NameID>administrator@vsphere.local</saml2:NameID></saml2:Subject></saml2:Assertion>"
    )
    stub = SoapStubAdapter(
        host=vcsim.host,
        port=vcsim.port,
        version=VmomiSupport.newestVersions.GetName("vim"),
        sslContext=context,
        samlToken=saml,
    )
    anonymous = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
    with pytest.raises(vim.fault.InvalidLogin):
        anonymous.sessionManager.LoginByToken()
    with pytest.raises(vim.fault.InvalidLogin):
        anonymous.sessionManager.LoginExtensionByCertificate(extensionKey="com.vmware.vim.eam")
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=anonymous.rootFolder)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.Folder, pathSet=["name"])],
    )
    with pytest.raises(vim.fault.NotAuthenticated):
        anonymous.propertyCollector.RetrieveContents([spec])

    url = f"https://{vcsim.host}:{vcsim.port}/folder/vio-template?dcPath=vio-dc&dsName=vio-ds1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, context=context, timeout=10)
    assert refused.value.code == 401
    request = urllib.request.Request(url, headers={"Cookie": si._stub.cookie})
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        assert response.status == 200 and b"vio-template.vmx" in response.read()


@pytest.mark.vsphere
@needs_go
def test_inventory(si: Any):
    from pyVmomi import vim

    assert set(objects(si, vim.Datacenter)) == {"vio-dc"}
    datacenter = objects(si, vim.Datacenter)["vio-dc"]
    clusters = objects(si, vim.ClusterComputeResource)
    assert {name: len(c.host) for name, c in clusters.items()} == {
        "vio-mgmt": 3,
        "vio-compute-a": 2,
        "vio-compute-b": 2,
    }
    mgmt_hosts = {h._moId for h in clusters["vio-mgmt"].host}
    datastores = objects(si, vim.Datastore)
    assert set(simulator.DATASTORES) <= set(datastores)
    for name in simulator.DATASTORES:
        assert mgmt_hosts <= {mount.key._moId for mount in datastores[name].host}
        assert datastores[name].summary.accessible
    for portgroup in simulator.PORTGROUPS:
        assert portgroup in {n.name for n in datacenter.network}
        for cluster in clusters.values():
            assert portgroup in {n.name for n in cluster.network}
    assert simulator.VM_FOLDER in {f.name for f in datacenter.vmFolder.childEntity}

    vms = objects(si, vim.VirtualMachine)
    assert {name for name in vms if not name.startswith("vio-test-")} == {simulator.TEMPLATE}
    template = vms[simulator.TEMPLATE]
    assert template.config.template is True
    assert template.config.guestId == "debian12_64Guest"
    assert template.resourcePool is None  # as on vCenter (reading an unset property works)
    assert template.runtime.host._moId in mgmt_hosts
    nics = [d for d in template.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    assert len(nics) == 1 and isinstance(nics[0], vim.vm.device.VirtualVmxnet3)
    assert nics[0].backing.deviceName == "vio-mgmt-pg"
    assert nics[0].key == 4000 and nics[0].deviceInfo.label == "Network adapter 1"


@pytest.mark.vsphere
@needs_go
def test_parallel_clones_are_customized(si: Any):
    from pyVmomi import vim

    template_before = template_devices(si)
    names = [f"vio-test-{i}" for i in range(CLONES)]
    addresses = {name: [MGMT_NET.format(100 + i), API_NET.format(100 + i)] for i, name in enumerate(names)}
    datastores = {name: simulator.DATASTORES[i % 3] for i, name in enumerate(names)}
    specs = {name: clone_spec(si, name, addresses[name], datastore=datastores[name]) for name in names}
    tasks = [start_clone(si, name, specs[name]) for name in names]  # all started before any wait
    vms = wait_for_tasks(si, tasks, timeout=60)
    for task in tasks:
        assert (method_name(task.info), task.info.descriptionId) == ("CloneVM_Task", "VirtualMachine.clone")
        assert task.info.entityName == simulator.TEMPLATE

    power = [vm.PowerOnVM_Task() for vm in vms]
    wait_for_tasks(si, power, timeout=60)
    assert {(method_name(t.info), t.info.descriptionId) for t in power} == {
        ("PowerOnVM_Task", "VirtualMachine.powerOn")
    }

    template = objects(si, vim.VirtualMachine)[simulator.TEMPLATE]
    template_macs = {d.macAddress for d in template.config.hardware.device if hasattr(d, "macAddress")}
    mgmt_hosts = {h._moId for h in objects(si, vim.ClusterComputeResource)["vio-mgmt"].host}
    macs, hosts = [], set()
    for name, vm in zip(names, vms, strict=True):
        assert vm.name == name and vm.runtime.powerState == "poweredOn"
        assert vm.guest.hostName == name
        assert vm.guest.ipAddress == addresses[name][0]
        assert [(n.network, list(n.ipAddress)) for n in vm.guest.net] == [
            ("vio-mgmt-pg", [addresses[name][0]]),
            ("vio-api-pg", [addresses[name][1]]),
        ]
        assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (2, 2048)
        assert [d.name for d in vm.datastore] == [datastores[name]]
        assert vm.parent.name == simulator.VM_FOLDER
        nics = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        assert [(n.key, n.backing.deviceName) for n in nics] == [(4000, "vio-mgmt-pg"), (4001, "vio-api-pg")]
        assert [n.macAddress for n in vm.guest.net] == [n.macAddress for n in nics]
        macs += [n.macAddress for n in nics]
        hosts.add(vm.runtime.host._moId)
    assert len(set(macs)) == len(macs) and not set(macs) & template_macs
    assert hosts == mgmt_hosts  # spread over the management cluster, as DRS would
    assert template_devices(si) == template_before  # the clones' edits did not reach the template


@pytest.mark.vsphere
@needs_go
def test_clone_into_a_compute_cluster(si: Any):
    """Placed in the pool's cluster, powered on by the spec, its disk grown by a disk edit."""
    from pyVmomi import vim

    spec = clone_spec(si, "vio-test-compute", [MGMT_NET.format(150), API_NET.format(150)], cluster="vio-compute-a")
    spec.powerOn = True
    template = objects(si, vim.VirtualMachine)[simulator.TEMPLATE]
    disk = next(d for d in template.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
    template_kb = disk.capacityInKB
    disk.capacityInKB = 40 * 1024 * 1024
    spec.config.deviceChange.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk))
    (vm,) = wait_for_tasks(si, [start_clone(si, "vio-test-compute", spec)], timeout=30)

    compute_hosts = {h._moId for h in objects(si, vim.ClusterComputeResource)["vio-compute-a"].host}
    assert vm.runtime.host._moId in compute_hosts
    assert vm.resourcePool.owner.name == "vio-compute-a"
    assert vm.runtime.powerState == "poweredOn" and vm.guest.hostName == "vio-test-compute"
    (clone_disk,) = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    assert clone_disk.capacityInKB == 40 * 1024 * 1024
    assert clone_disk.backing.fileName.startswith("[vio-ds1] vio-test-compute/")
    (template_disk,) = [d for d in template.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    assert template_disk.capacityInKB == template_kb


@pytest.mark.vsphere
@needs_go
def test_invalid_clones_fail_as_on_vcenter(si: Any):
    from pyVmomi import vim

    mismatch = clone_spec(si, "vio-test-bad", [MGMT_NET.format(160)])  # 2 NICs, 1 NIC setting
    fault = wait_failed(si, start_clone(si, "vio-test-bad", mismatch))
    assert isinstance(fault, vim.fault.NicSettingMismatch)
    assert (fault.numberOfNicsInSpec, fault.numberOfNicsInVM) == (1, 2)

    unknown = clone_spec(si, "vio-test-bad", [MGMT_NET.format(160), API_NET.format(160)])
    unknown.config.deviceChange[1].device.backing.deviceName = "no-such-pg"
    unknown.config.deviceChange[1].device.backing.network = None
    assert isinstance(wait_failed(si, start_clone(si, "vio-test-bad", unknown)), vim.fault.InvalidDeviceSpec)
    assert "vio-test-bad" not in objects(si, vim.VirtualMachine)

    first = clone_spec(si, "vio-test-twice", [MGMT_NET.format(161), API_NET.format(161)])
    wait_for_tasks(si, [start_clone(si, "vio-test-twice", first)], timeout=30)
    again = clone_spec(si, "vio-test-twice", [MGMT_NET.format(162), API_NET.format(162)])
    assert isinstance(wait_failed(si, start_clone(si, "vio-test-twice", again)), vim.fault.DuplicateName)


@pytest.mark.vsphere
@needs_go
def test_vm_tasks_show_in_recent_tasks(si: Any):
    """What the lab's node watcher follows: every task in TaskManager.recentTask, named as on vCenter."""
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    content = si.RetrieveContent()
    spec = clone_spec(si, "vio-test-snap", [MGMT_NET.format(170), API_NET.format(170)])
    spec.powerOn = True
    (vm,) = wait_for_tasks(si, [start_clone(si, "vio-test-snap", spec)], timeout=30)
    assert vm.snapshot is None  # an unset property reads as None

    collector = content.propertyCollector.CreatePropertyCollector()
    try:
        collector.CreateFilter(
            pc.FilterSpec(
                objectSet=[pc.ObjectSpec(obj=content.taskManager)],
                propSet=[pc.PropertySpec(type=vim.TaskManager, pathSet=["recentTask"])],
            ),
            partialUpdates=False,
        )
        version = collector.WaitForUpdatesEx("", pc.WaitOptions(maxWaitSeconds=1)).version
        before = {t._moId for t in content.taskManager.recentTask}

        (snapshot,) = wait_for_tasks(si, [vm.CreateSnapshot_Task(name="before", memory=False, quiesce=False)])
        assert vm.snapshot.currentSnapshot == snapshot
        assert wait_for_tasks(si, [snapshot.RevertToSnapshot_Task()]) == [snapshot]  # result: lab extension
        assert wait_for_tasks(si, [snapshot.RemoveSnapshot_Task(removeChildren=True)]) == [snapshot]
        assert vm.snapshot is None
        wait_for_tasks(si, [vm.PowerOffVM_Task()])
        wait_for_tasks(si, [vm.Destroy_Task()])

        update = collector.WaitForUpdatesEx(version, pc.WaitOptions(maxWaitSeconds=5))
        assert update is not None  # the filter saw recentTask change
        changes = [c for fs in update.filterSet for o in fs.objectSet for c in o.changeSet]
        assert {c.name for c in changes} == {"recentTask"}
        new = [t for t in changes[-1].val if t._moId not in before]
    finally:
        collector.Destroy()

    seen = [(method_name(t.info), t.info.descriptionId, t.info.entityName) for t in new]
    print("\nrecentTask:", *seen, sep="\n  ")
    assert [s for s in seen if s[2] == "vio-test-snap"] == [
        ("CreateSnapshot_Task", "VirtualMachine.createSnapshot", "vio-test-snap"),
        ("RevertToSnapshot_Task", "vm.Snapshot.revert", "vio-test-snap"),
        ("RemoveSnapshot_Task", "vm.Snapshot.remove", "vio-test-snap"),
        ("PowerOffVM_Task", "VirtualMachine.powerOff", "vio-test-snap"),
        ("Destroy_Task", "VirtualMachine.destroy", "vio-test-snap"),
    ]
    assert all(t.info.state == "success" for t in new)
    assert all(t.info.entity._moId == vm._moId for t in new if t.info.entityName == "vio-test-snap")
    assert "vio-test-snap" not in objects(si, vim.VirtualMachine)


@pytest.mark.vsphere
@needs_go
def test_stop_and_restart(binary: Path, tmp_path: Path):
    from pyVim.connect import Disconnect
    from pyVmomi import vim

    handle = simulator.start(binary, tmp_path, "127.0.0.1", 0)
    si = simulator.connect(handle)
    spec = clone_spec(si, "vio-test-gone", [MGMT_NET.format(180), API_NET.format(180)])
    wait_for_tasks(si, [start_clone(si, "vio-test-gone", spec)], timeout=30)
    Disconnect(si)
    simulator.stop(handle.pid)
    assert not Path(f"/proc/{handle.pid}").exists()
    simulator.stop(handle.pid)  # already gone: nothing to do

    again = simulator.start(binary, tmp_path, "127.0.0.1", 0)  # same lab dir: same CA and password
    try:
        assert (again.ca_file, again.password_file) == (handle.ca_file, handle.password_file)
        si = simulator.connect(again)
        assert set(objects(si, vim.VirtualMachine)) == {simulator.TEMPLATE}  # a fresh inventory
        assert not (tmp_path / simulator.DATASTORE_DIR / "vio-ds1" / "vio-test-gone").exists()
        Disconnect(si)
    finally:
        simulator.stop(again.pid)
    log = (tmp_path / simulator.LOG_NAME).read_text()
    assert log.count("received terminated, stopping") == 2
    assert simulator.read_password(handle.password_file) not in log


@pytest.mark.vsphere
@needs_go
def test_start_reports_a_busy_port(binary: Path, tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        started = time.monotonic()
        with pytest.raises(OperationFailed) as failed:
            simulator.start(binary, tmp_path, "127.0.0.1", busy.getsockname()[1])
    assert time.monotonic() - started < 10
    assert "exited" in failed.value.message
    assert str(tmp_path / simulator.LOG_NAME) in failed.value.hint
    assert any("address already in use" in line for line in failed.value.details)


def test_stop_refuses_another_program(tmp_path: Path):
    import subprocess

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(Refused):
            simulator.stop(sleeper.pid)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
