package main

// The lab inventory: the names the lab's inventories use, built through the simulator's own SOAP
// methods (an in-process client) plus a few direct registry updates where govmomi 0.24.2 leaves a
// shared object attached to one host only.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	datacenterName  = "vio-dc"
	vmFolderName    = "vio-lab"
	templateName    = "vio-template"
	templateGuestID = "debian12_64Guest"
	templateCPUs    = 2
	templateMemMB   = 4096
	templateDiskGB  = 20
	vswitchName     = "vSwitch0"

	pciControllerKey = 100  // the simulator's default PCI controller
	firstNICKey      = 4000 // vCenter's first network adapter key
	firstNICUnit     = 7    // and its unit number on the PCI bus
)

type clusterSpec struct {
	name  string
	hosts []string
}

// clusters: the management cluster first (the template lives there), then the compute clusters.
var clusters = []clusterSpec{
	{"vio-mgmt", []string{"esx-mgmt-01.vio.lab", "esx-mgmt-02.vio.lab", "esx-mgmt-03.vio.lab"}},
	{"vio-compute-a", []string{"esx-compute-a-01.vio.lab", "esx-compute-a-02.vio.lab"}},
	{"vio-compute-b", []string{"esx-compute-b-01.vio.lab", "esx-compute-b-02.vio.lab"}},
}

// datastoreNames are shared datastores mounted on every host; the template lives on the first.
var datastoreNames = []string{"vio-ds1", "vio-ds2", "vio-ds3"}

// portgroupNames are standard port groups on every host; the template's NIC is on the first.
var portgroupNames = []string{"vio-mgmt-pg", "vio-api-pg"}

func init() {
	// govmomi 0.24.2 validates guest ids against a list that stops at Debian 10.
	simulator.GuestID = append(simulator.GuestID,
		types.VirtualMachineGuestOsIdentifier("debian11_64Guest"),
		types.VirtualMachineGuestOsIdentifier(templateGuestID))
}

// createModel builds an empty vCenter model and fills it with the lab inventory.
func createModel(dsRoot string) (*simulator.Model, error) {
	model := simulator.VPX()
	model.Autostart = false
	model.Datacenter = 0 // the inventory below replaces the generated DC0/C0/H0/LocalDS_0/VMs
	model.Portgroup = 0
	model.Host = 0
	model.Cluster = 0
	model.ClusterHost = 0
	model.Datastore = 0
	model.Machine = 0
	if err := model.Create(); err != nil {
		return nil, err
	}
	installFetchPC()
	installExtensionManager()
	installSearchIndex()
	simulator.Map.AddHandler(taskFixer{})
	ctx := context.Background()
	client, err := vim25.NewClient(ctx, model.Service)
	if err != nil {
		return nil, err
	}
	template, err := buildInventory(ctx, client, dsRoot)
	if err != nil {
		model.Remove()
		return nil, err
	}
	// The wrapper takes the VM's state over under the same moref; the original object is dropped.
	vm := simulator.Map.Get(template).(*simulator.VirtualMachine)
	simulator.Map.Put(&templateVM{*vm})
	reserveMACs(vm.Config.Hardware.Device)
	clearRecentTasks()
	return model, nil
}

// buildInventory creates the datacenter, clusters, hosts, datastores, port groups, VM folder and
// template; it returns the template's reference.
func buildInventory(ctx context.Context, c *vim25.Client, dsRoot string) (types.ManagedObjectReference, error) {
	var none types.ManagedObjectReference
	dc, err := object.NewRootFolder(c).CreateDatacenter(ctx, datacenterName)
	if err != nil {
		return none, err
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return none, err
	}
	var hosts []*object.HostSystem
	var mgmt *object.ClusterComputeResource
	for i, spec := range clusters {
		cluster, members, err := addCluster(ctx, folders.HostFolder, spec)
		if err != nil {
			return none, err
		}
		if i == 0 {
			mgmt = cluster
		}
		hosts = append(hosts, members...)
	}
	for _, name := range datastoreNames {
		if err := addDatastore(ctx, hosts, name, filepath.Join(dsRoot, name)); err != nil {
			return none, err
		}
	}
	networks := map[string]types.ManagedObjectReference{}
	for _, name := range portgroupNames {
		ref, err := addPortgroup(ctx, hosts, name)
		if err != nil {
			return none, err
		}
		networks[name] = ref
	}
	if _, err := folders.VmFolder.CreateFolder(ctx, vmFolderName); err != nil {
		return none, err
	}
	return addTemplate(ctx, folders.VmFolder, mgmt, hosts[0], networks[portgroupNames[0]])
}

func addCluster(ctx context.Context, folder *object.Folder, spec clusterSpec) (
	*object.ClusterComputeResource, []*object.HostSystem, error) {
	cluster, err := folder.CreateCluster(ctx, spec.name, types.ClusterConfigSpecEx{})
	if err != nil {
		return nil, nil, fmt.Errorf("cluster %s: %v", spec.name, err)
	}
	var hosts []*object.HostSystem
	for _, name := range spec.hosts {
		task, err := cluster.AddHost(ctx, types.HostConnectSpec{HostName: name}, true, nil, nil)
		if err != nil {
			return nil, nil, err
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("host %s: %v", name, err)
		}
		hosts = append(hosts, object.NewHostSystem(cluster.Client(), info.Result.(types.ManagedObjectReference)))
	}
	return cluster, hosts, nil
}

// addDatastore creates a datastore backed by dir on the first host, then mounts it on the others.
// (CreateLocalDatastore on each host would replace the datastore object each time, leaving it
// mounted on the last host only and listed once per host in the datastore folder.)
func addDatastore(ctx context.Context, hosts []*object.HostSystem, name, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dss, err := hosts[0].ConfigManager().DatastoreSystem(ctx)
	if err != nil {
		return err
	}
	created, err := dss.CreateLocalDatastore(ctx, name, dir)
	if err != nil {
		return fmt.Errorf("datastore %s: %v", name, err)
	}
	ref := created.Reference()
	ds := simulator.Map.Get(ref).(*simulator.Datastore)
	mounts := append([]types.DatastoreHostMount(nil), ds.Host...)
	for _, h := range hosts[1:] {
		host := simulator.Map.Get(h.Reference()).(*simulator.HostSystem)
		system := simulator.Map.Get(*host.ConfigManager.DatastoreSystem).(*simulator.HostDatastoreSystem)
		system.Datastore = appendRef(system.Datastore, ref)
		simulator.Map.Update(host, []types.PropertyChange{{Name: "datastore", Val: system.Datastore}})
		updateComputeResource(host, "datastore", ref)
		mounts = append(mounts, types.DatastoreHostMount{
			Key: host.Self,
			MountInfo: types.HostMountInfo{
				Path:       dir,
				AccessMode: string(types.HostMountModeReadWrite),
				Mounted:    types.NewBool(true),
				Accessible: types.NewBool(true),
			},
		})
	}
	ds.Summary.MultipleHostAccess = types.NewBool(true) // nobody can watch yet: no Update needed
	asSharedVMFS(ds)
	simulator.Map.Update(ds, []types.PropertyChange{{Name: "host", Val: mounts}})
	return nil
}

// addPortgroup adds a standard port group to every host's vSwitch0: the first call creates the
// datacenter's Network, which is then listed in each host's and cluster's `network`, as on vCenter.
func addPortgroup(ctx context.Context, hosts []*object.HostSystem, name string) (types.ManagedObjectReference, error) {
	var none types.ManagedObjectReference
	ns, err := hosts[0].ConfigManager().NetworkSystem(ctx)
	if err != nil {
		return none, err
	}
	spec := types.HostPortGroupSpec{Name: name, VswitchName: vswitchName, Policy: types.HostNetworkPolicy{}}
	if err := ns.AddPortGroup(ctx, spec); err != nil {
		return none, fmt.Errorf("port group %s: %v", name, err)
	}
	network := findNetwork(name)
	if network == nil {
		return none, fmt.Errorf("port group %s: no network object was created", name)
	}
	var members []types.ManagedObjectReference
	for _, h := range hosts {
		host := simulator.Map.Get(h.Reference()).(*simulator.HostSystem)
		simulator.Map.Update(host, []types.PropertyChange{{Name: "network", Val: appendRef(host.Network, network.Self)}})
		updateComputeResource(host, "network", network.Self)
		members = append(members, host.Self)
	}
	simulator.Map.Update(network, []types.PropertyChange{{Name: "host", Val: members}})
	return network.Self, nil
}

// findNetwork returns the standard Network called name (the lab has one datacenter).
func findNetwork(name string) *mo.Network {
	for _, obj := range simulator.Map.All("Network") {
		if n, ok := obj.(*mo.Network); ok && n.Name == name {
			return n
		}
	}
	return nil
}

// updateComputeResource appends ref to the named reference list (datastore, network) of host's cluster.
func updateComputeResource(host *simulator.HostSystem, field string, ref types.ManagedObjectReference) {
	cluster, ok := simulator.Map.Get(*host.Parent).(*simulator.ClusterComputeResource)
	if !ok {
		return
	}
	var list []types.ManagedObjectReference
	switch field {
	case "datastore":
		list = cluster.Datastore
	case "network":
		list = cluster.Network
	}
	simulator.Map.Update(cluster, []types.PropertyChange{{Name: field, Val: appendRef(list, ref)}})
}

// appendRef returns a new slice: list plus ref if missing. (Several simulator slices share backing
// arrays, e.g. a cluster's `network` and its datacenter's, so appending in place is unsafe.)
func appendRef(list []types.ManagedObjectReference, ref types.ManagedObjectReference) []types.ManagedObjectReference {
	out := append([]types.ManagedObjectReference(nil), list...)
	if simulator.FindReference(out, ref) == nil {
		out = append(out, ref)
	}
	return out
}

// addTemplate creates the template VM on the first datastore: one pvscsi disk and ONE vmxnet3 NIC on
// the management port group, then marks it as a template.
func addTemplate(ctx context.Context, vmFolder *object.Folder, cluster *object.ClusterComputeResource,
	host *object.HostSystem, network types.ManagedObjectReference) (types.ManagedObjectReference, error) {
	var none types.ManagedObjectReference
	pool, err := cluster.ResourcePool(ctx)
	if err != nil {
		return none, err
	}
	ds := datastoreNames[0]
	// Keys, units and labels as vCenter numbers them (the simulator would invent its own).
	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return none, err
	}
	controller := scsi.(types.BaseVirtualController)
	setDevice(scsi, 1000, pciControllerKey, 3, "SCSI controller 0")
	controller.GetVirtualController().BusNumber = 0
	devices = append(devices, scsi)
	disk := devices.CreateDisk(controller, types.ManagedObjectReference{},
		fmt.Sprintf("[%s] %s/%s.vmdk", ds, templateName, templateName))
	disk.CapacityInKB = templateDiskGB * 1024 * 1024
	setDevice(disk, 2000, 1000, 0, "Hard disk 1")
	backing := &types.VirtualEthernetCardNetworkBackingInfo{
		VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: portgroupNames[0]},
		Network:                        &network,
	}
	nic, err := devices.CreateEthernetCard("vmxnet3", backing)
	if err != nil {
		return none, err
	}
	setDevice(nic, firstNICKey, pciControllerKey, firstNICUnit, "Network adapter 1")
	devices = append(devices, disk, nic)
	changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return none, err
	}
	config := types.VirtualMachineConfigSpec{
		Name:         templateName,
		GuestId:      templateGuestID,
		NumCPUs:      templateCPUs,
		MemoryMB:     templateMemMB,
		Annotation:   "viocli lab template (Debian 12)",
		Files:        &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", ds)},
		DeviceChange: changes,
	}
	task, err := vmFolder.CreateVM(ctx, config, pool, host)
	if err != nil {
		return none, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return none, fmt.Errorf("template %s: %v", templateName, err)
	}
	ref := info.Result.(types.ManagedObjectReference)
	if err := object.NewVirtualMachine(vmFolder.Client(), ref).MarkAsTemplate(ctx); err != nil {
		return none, err
	}
	return ref, nil
}

// setDevice sets a device's key, controller, unit number and label.
func setDevice(device types.BaseVirtualDevice, key, controllerKey, unit int32, label string) {
	d := device.GetVirtualDevice()
	d.Key = key
	d.ControllerKey = controllerKey
	d.UnitNumber = types.NewInt32(unit)
	d.DeviceInfo = &types.Description{Label: label} // the simulator fills the summary
}
