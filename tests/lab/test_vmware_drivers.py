"""OpenStack's own VMware drivers against the lab's vCenter simulator.

nova's VMwareVCDriver, cinder's VMwareVcVmdkDriver and glance_store's VMware store (with oslo.vmware and
suds) run exactly as installed in the lab's node template: each test mounts an overlay of the template's
root filesystem in a private mount namespace, chroots into it and runs a Python script there that talks
to a simulator on 127.0.0.1 (the chroot shares the host's network), TLS verified against the lab CA.
Needs root, overlayfs, the template (built by ``viocli lab up``) and the simulator's build dependencies.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.vsphere.instances import clone_instance_vm
from viocli.lab import simulator, template
from viocli.lab.control import cache_dir

pytestmark = pytest.mark.lab

SHARE = "/mnt/viocli-test"  # where the test's files appear inside the chroot
RUN_TIMEOUT = 300
INSTANCE_UUID = "5d4c3b2a-1111-4222-8333-944445555666"
GLANCE_PORT = 443  # glance_store's VMware store has no port option


def template_rootfs() -> Path:
    """The lab's current node template, or skip."""
    rootfs = template.DEFAULT_CACHE_ROOT / template.cache_key(template.package_list(), template.apt_sources())
    rootfs = rootfs / "rootfs"
    if not (rootfs / "usr/lib/python3/dist-packages/nova/virt/vmwareapi").is_dir():
        pytest.skip(f"no lab node template with nova at {rootfs} (viocli lab up builds it)")
    return rootfs


@pytest.fixture
def chroot(tmp_path: Path) -> Callable[[str, simulator.SimulatorHandle], dict]:
    """Run a Python script in an overlay of the template; returns the JSON it prints after ``RESULT``."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (util-linux)")
    lower = template_rootfs()
    share, upper, work, merged = (tmp_path / name for name in ("share", "upper", "work", "merged"))
    for directory in (share, upper, work, merged):
        directory.mkdir()

    def run(script: str, handle: simulator.SimulatorHandle) -> dict:
        shutil.copy(handle.ca_file, share / "ca.pem")
        facts = {"port": handle.port, "user": handle.username, "password_file": f"{SHARE}/credentials"}
        shutil.copy(handle.password_file, share / "credentials")
        (share / "sim.json").write_text(json.dumps(facts))
        (share / "script.py").write_text(textwrap.dedent(script))
        setup = (
            f"mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {merged} && "
            f"mount --bind /proc {merged}/proc && mount --bind /dev {merged}/dev && "
            f"mkdir -p {merged}{SHARE} && mount --bind {share} {merged}{SHARE} && "
            f"exec chroot {merged} env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "
            f"python3 {SHARE}/script.py"
        )
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
        assert result.returncode == 0 and lines, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-6000:]}"
        return json.loads(lines[-1].removeprefix("RESULT "))

    return run


@pytest.fixture
def vcsim(tmp_path: Path) -> Iterator[simulator.SimulatorHandle]:
    handle = simulator.start(simulator.build(cache_dir()), tmp_path / "vcsim", "127.0.0.1", 0)
    yield handle
    simulator.stop(handle.pid)


COMMON = f"""
import json
import logging
import sys

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
SIM = json.load(open("{SHARE}/sim.json"))
PASSWORD = open(SIM["password_file"]).read().splitlines()[1]
CA = "{SHARE}/ca.pem"
"""

NOVA = (
    COMMON
    + """
import uuid

from oslo_vmware import api, vim_util

session = api.VMwareAPISession("127.0.0.1", SIM["user"], PASSWORD, 3, 0.5, port=SIM["port"], cacert=CA)
found = session.invoke_api(vim_util, "get_objects", session.vim, "ClusterComputeResource", 100, ["name"])
clusters = sorted(o.propSet[0].val for o in found.objects)

open("/tmp/nova.conf", "w").write(f'''
[DEFAULT]
host = compute-vio-compute-a
compute_driver = vmwareapi.VMwareVCDriver
[vmware]
host_ip = 127.0.0.1
host_port = {SIM["port"]}
host_username = {SIM["user"]}
host_password = {PASSWORD}
ca_file = {CA}
insecure = false
cluster_name = vio-compute-a
''')
import nova.conf
from nova import config, objects
from nova import context as nova_context
from nova.compute import provider_tree
from nova.virt import driver as virt_driver
from nova.virt import virtapi

objects.register_all()
config.parse_args(["nova-compute", "--config-file", "/tmp/nova.conf"])
CONF = nova.conf.CONF
driver = virt_driver.load_compute_driver(virtapi.VirtAPI(), CONF.compute_driver)
driver.init_host(CONF.host)
nodes = driver.get_available_nodes(refresh=True)
resource = driver.get_available_resource(nodes[0])
tree = provider_tree.ProviderTree()
tree.new_root(nodes[0], str(uuid.uuid4()))
driver.update_provider_tree(tree, nodes[0])
instances = driver.list_instances()
instance = objects.Instance(uuid=instances[0], id=1, vm_state="active", task_state=None)
info = driver.get_info(instance)
# The image cache's aging (periodic): its database query stands aside, the datastore browsing runs.
driver._vmops._imagecache._list_running_instances = lambda context, instances: {"used_images": {}}
driver.manage_image_cache(nova_context.get_admin_context(), [])
print("RESULT " + json.dumps({
    "clusters": clusters,
    "nodes": nodes,
    "resource": {k: resource[k] for k in ("vcpus", "memory_mb", "local_gb", "hypervisor_type")},
    "inventory": tree.data(nodes[0]).inventory,
    "instances": instances,
    "num_instances": driver.get_num_instances(),
    "power_state": info.state,
    "exists": driver.instance_exists(instance),
    "connector": driver.get_volume_connector(instance),
}, default=str))
"""
)

CINDER = (
    COMMON
    + """
import uuid

open("/tmp/cinder.conf", "w").write(f'''
[DEFAULT]
enabled_backends = vmware
[vmware]
volume_driver = cinder.volume.drivers.vmware.vmdk.VMwareVcVmdkDriver
volume_backend_name = vmware
vmware_host_ip = 127.0.0.1
vmware_host_port = {SIM["port"]}
vmware_host_username = {SIM["user"]}
vmware_host_password = {PASSWORD}
vmware_ca_file = {CA}
vmware_insecure = false
vmware_cluster_name = vio-compute-a
vmware_cluster_name = vio-compute-b
vmware_volume_folder = Volumes
vmware_enable_volume_stats = true
vmware_lazy_create = false
''')
from oslo_config import cfg

from cinder import context, objects
from cinder.volume import configuration
from cinder.volume.drivers.vmware import vmdk

objects.register_all()
cfg.CONF(["--config-file", "/tmp/cinder.conf"], project="cinder")
driver = vmdk.VMwareVcVmdkDriver(
    configuration=configuration.Configuration(vmdk.vmdk_opts, config_group="vmware"), host="volume@vmware"
)
ctx = context.get_admin_context()
driver.do_setup(ctx)
driver.check_for_setup_error()
stats = driver.get_volume_stats(refresh=True)
volume = objects.Volume(
    ctx, id=str(uuid.uuid4()), size=1, display_name="vol1", project_id="f" * 32, volume_type_id=None,
    volume_type=None, status="creating", attach_status="detached", availability_zone="nova",
    host="volume@vmware#vmware", _name_id=None, volume_attachment=objects.VolumeAttachmentList(),
    metadata={}, admin_metadata={}, encryption_key_id=None, multiattach=False, snapshot_id=None,
)
driver.create_volume(volume)
backing = driver.volumeops.get_backing(volume.name, volume.id)
vmdk_path = driver.volumeops.get_vmdk_path(backing)
driver.delete_volume(volume)
print("RESULT " + json.dumps({
    "clusters": len(driver._clusters),
    "stats": {k: stats[k] for k in ("total_capacity_gb", "free_capacity_gb", "storage_protocol")},
    "backing": backing.value if backing else None,
    "vmdk_path": vmdk_path,
    "after_delete": driver.volumeops.get_backing(volume.name, volume.id),
}, default=str))
"""
)

GLANCE = (
    COMMON
    + """
import hashlib
import io
import uuid

# The single-store configuration: glance_store 4.1.0's multi-store mode cannot serve this store (it looks
# the store up by its type, "vmware", among URI schemes, where it is "vsphere").
open("/tmp/glance-api.conf", "w").write(f'''
[glance_store]
stores = file, vmware
default_store = vsphere
filesystem_store_datadir = /tmp/images
vmware_server_host = 127.0.0.1
vmware_server_username = {SIM["user"]}
vmware_server_password = {PASSWORD}
vmware_insecure = false
vmware_ca_file = {CA}
vmware_datastores = vio-dc:vio-ds2
vmware_store_image_dir = /openstack_glance
vmware_task_poll_interval = 1
''')
from oslo_config import cfg

import glance_store
from glance_store import location

CONF = cfg.CONF
glance_store.register_opts(CONF)
CONF(["--config-file", "/tmp/glance-api.conf"], project="glance")
glance_store.create_stores(CONF)
glance_store.verify_default_store()
store = glance_store.backend.get_store_from_scheme("vsphere")
data = bytes(range(256)) * 8192
loc, size, checksum, _, meta = store.add(str(uuid.uuid4()), io.BytesIO(data), len(data), "sha256")
parsed = location.get_location_from_uri(loc, conf=CONF)
reader, length = store.get(parsed)
back = b"".join(reader)
store.delete(parsed)
try:
    store.get_size(parsed)
    gone = False
except glance_store.exceptions.NotFound:
    gone = True
print("RESULT " + json.dumps({
    "datastores": [ds.name for group in store.datastores.values() for ds in group],
    "location": loc,
    "size": size,
    "md5": checksum == hashlib.md5(data).hexdigest(),
    "read_back": length == len(data) and back == data,
    "gone": gone,
}))
"""
)


def test_nova_compute_starts_and_reports_its_cluster(vcsim: simulator.SimulatorHandle, chroot) -> None:
    """What nova-compute does at start and in its resource tracker, plus the instance lookups."""
    clone_instance_vm(vcsim, INSTANCE_UUID, INSTANCE_UUID, power_on=True)  # as nova names and tags them
    result = chroot(NOVA, vcsim)
    assert result["clusters"] == ["vio-compute-a", "vio-compute-b", "vio-mgmt"]
    (node,) = result["nodes"]
    assert node.startswith("clustercomputeresource-")
    resource = result["resource"]
    assert resource["hypervisor_type"] == "VMware vCenter Server"
    assert resource["vcpus"] > 0 and resource["memory_mb"] > 0 and resource["local_gb"] > 0
    inventory = result["inventory"]
    assert set(inventory) == {"VCPU", "MEMORY_MB", "DISK_GB"}
    assert inventory["DISK_GB"]["total"] > 0 and inventory["DISK_GB"]["max_unit"] > 0
    assert result["instances"] == [INSTANCE_UUID] and result["num_instances"] == 1
    assert result["exists"] is True and result["power_state"] == 1  # nova's power_state.RUNNING
    assert result["connector"]["instance"].startswith("vm-")

    si = simulator.connect(vcsim)
    assert [e.key for e in si.content.extensionManager.extensionList] == ["org.openstack.compute"]


def test_cinder_volume_sets_up_and_manages_a_volume(vcsim: simulator.SimulatorHandle, chroot) -> None:
    result = chroot(CINDER, vcsim)
    assert result["clusters"] == 2
    assert result["stats"]["storage_protocol"] == "vmdk" and result["stats"]["total_capacity_gb"] > 0
    assert result["backing"].startswith("vm-")
    assert result["vmdk_path"].startswith("[vio-ds") and result["vmdk_path"].endswith(".vmdk")
    assert result["after_delete"] is None


def test_glance_stores_images_on_a_datastore(tmp_path: Path, chroot) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", GLANCE_PORT))
        except OSError:
            pytest.skip(f"127.0.0.1:{GLANCE_PORT} is taken (glance_store connects to vCenter on {GLANCE_PORT} only)")
    handle = simulator.start(
        simulator.build(cache_dir()), tmp_path / "vcsim", "127.0.0.1", 0, also_ports=(GLANCE_PORT,)
    )
    try:
        result = chroot(GLANCE, handle)
    finally:
        simulator.stop(handle.pid)
    assert result["datastores"] == ["vio-ds2"]
    assert result["location"].startswith("vsphere://127.0.0.1/folder/openstack_glance/")
    assert "dsName=vio-ds2" in result["location"] and "dcPath=vio-dc" in result["location"]
    assert result["size"] == 256 * 8192 and result["md5"] and result["read_back"] and result["gone"]
