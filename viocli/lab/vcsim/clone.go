package main

// CloneVM_Task from the template, as vCenter does it. govmomi 0.24.2's simulator clones the devices and
// little else; the template is wrapped (templateVM replaces it in the registry under the same moref) so
// that a clone also gets, before the CloneVM_Task call returns:
//   - its own copies of the template's devices, with new random MAC addresses, unique in this vCenter
//     (0.24.2 hands the template's device objects to the clone, so every clone shared one MAC and edits
//     leaked into the template; its own generated MACs come from 12 bits of the VM's UUID);
//   - the hardware of spec.config (numCPUs, numCoresPerSocket, memoryMB, annotation);
//   - disk edits of spec.config.deviceChange as a resize of its own disk (0.24.2 would point the clone
//     at the template's disk file);
//   - a host: spec.location.host, else the least loaded host of spec.location.pool's cluster
//     (0.24.2 puts every clone on the template's host, whatever the pool);
//   - guest.net rebuilt from its final NICs in device key order (4000, 4001, ...: the order of
//     customization's nicSettingMap), each with its port group name (0.24.2 keeps the name a NIC was
//     added with, even after an edit re-backs it, and keeps removed NICs);
//   - spec.customization, applied at power-on (0.24.2 ignores it here: only CustomizeVM_Task sets it);
//     this shows as a CustomizeVM_Task on the clone;
//   - spec.powerOn honoured (a PowerOnVM_Task on the clone).
// All of it runs inside the clone task (after the simulator's CreateVM_Task), so the CloneVM_Task
// succeeds once the clone is complete, and fails (the clone destroyed) if any step fails.
// Invalid specs fail the clone task with the fault vCenter gives (DuplicateName, NicSettingMismatch,
// InvalidDeviceSpec, InvalidArgument) instead of panicking in the simulator or creating a second VM of
// the same name in the folder.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"sort"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// templateVM is the template's simulator.VirtualMachine with CloneVM_Task completed as described above.
// It embeds the VirtualMachine by value: the simulator's PropertyCollector and views look for an mo
// type by descending first fields of structs, which a pointer would stop.
type templateVM struct {
	simulator.VirtualMachine
}

// clonePlan is what planClone decided before the clone exists.
type clonePlan struct {
	devices    object.VirtualDeviceList // the clone's devices before deviceChange
	host       *simulator.HostSystem
	diskEdits  []*types.VirtualDisk
	nextNICKey int32
}

// CloneVMTask is dispatched by the simulator for CloneVM_Task on the template (by method name).
func (t *templateVM) CloneVMTask(ctx *simulator.Context, req *types.CloneVM_Task) soap.HasFault {
	copies, err := deviceCopies(t.Config.Hardware.Device)
	if err != nil {
		return cloneResponse(failedTask(&t.VirtualMachine, &types.SystemError{Reason: err.Error()}))
	}
	plan, fault := t.planClone(req, copies)
	if fault != nil {
		return cloneResponse(failedTask(&t.VirtualMachine, fault))
	}
	original := t.Config.Hardware.Device
	t.Config.Hardware.Device = copies // what the simulator copies to the clone
	pendingClones.Store(t.Self, &pendingClone{ctx: ctx, req: req, plan: plan})
	defer func() {
		t.Config.Hardware.Device = original
		pendingClones.Delete(t.Self)
	}()
	return t.VirtualMachine.CloneVMTask(ctx, req) // runs the task: see completeCloneTask
}

// pendingClones holds, by template moref, the clone templateVM.CloneVMTask is running. The simulator
// holds the template's lock for the whole call, so there is at most one per template.
var pendingClones sync.Map

type pendingClone struct {
	ctx  *simulator.Context
	req  *types.CloneVM_Task
	plan *clonePlan
}

// completeCloneTask makes a new clone task (seen by taskFixer) finish the clone before it succeeds, so
// the task's success means the clone is complete, and a failure leaves no clone behind.
func completeCloneTask(task *simulator.Task) {
	value, ok := pendingClones.LoadAndDelete(*task.Info.Entity)
	if !ok {
		return
	}
	pending := value.(*pendingClone)
	run := task.Execute
	task.Execute = func(t *simulator.Task) (types.AnyType, types.BaseMethodFault) {
		result, fault := run(t)
		ref, ok := result.(types.ManagedObjectReference)
		if fault != nil || !ok {
			return result, fault
		}
		clone := simulator.Map.Get(ref).(*simulator.VirtualMachine)
		simulator.Map.WithLock(clone, func() {
			fault = finishClone(pending.ctx, clone, pending.req, pending.plan)
			if fault != nil {
				clone.DestroyTask(pending.ctx, &types.Destroy_Task{This: clone.Self})
			}
		})
		if fault != nil {
			return nil, fault
		}
		return ref, nil
	}
}

// planClone validates and normalizes req.Spec in place, and picks the clone's host. copies are the
// devices the clone will start from.
func (t *templateVM) planClone(req *types.CloneVM_Task, copies []types.BaseVirtualDevice) (*clonePlan, types.BaseMethodFault) {
	spec := &req.Spec
	if folder, ok := simulator.Map.Get(req.Folder).(*simulator.Folder); ok {
		if existing := simulator.Map.FindByName(req.Name, folder.ChildEntity); existing != nil {
			return nil, &types.DuplicateName{Name: req.Name, Object: existing.Reference()}
		}
	}
	plan := &clonePlan{nextNICKey: firstNICKey, devices: object.VirtualDeviceList(copies)}
	nics := 0
	for _, card := range ethernetCards(copies) {
		nics++
		if card.Key >= plan.nextNICKey {
			plan.nextNICKey = card.Key + 1
		}
	}
	var fault types.BaseMethodFault
	spec.Location.DeviceChange, fault = normalizeChanges(spec.Location.DeviceChange, plan, &nics)
	if fault != nil {
		return nil, fault
	}
	if spec.Config != nil {
		spec.Config.DeviceChange, fault = normalizeChanges(spec.Config.DeviceChange, plan, &nics)
		if fault != nil {
			return nil, fault
		}
	}
	if spec.Customization != nil && len(spec.Customization.NicSettingMap) != nics {
		return nil, &types.NicSettingMismatch{
			NumberOfNicsInSpec: int32(len(spec.Customization.NicSettingMap)),
			NumberOfNicsInVM:   int32(nics),
		}
	}
	if spec.Location.Pool == nil {
		return plan, nil // the simulator fails the task: a template clone needs a pool
	}
	candidates := poolHosts(*spec.Location.Pool)
	if spec.Location.Host != nil {
		if simulator.FindReference(candidates, *spec.Location.Host) == nil {
			return nil, &types.InvalidArgument{InvalidProperty: "spec.location.host"}
		}
		plan.host = simulator.Map.Get(*spec.Location.Host).(*simulator.HostSystem)
	} else {
		plan.host = leastLoaded(candidates)
	}
	return plan, nil
}

// normalizeChanges checks one deviceChange list: port groups must exist (deviceName is filled from
// the network when missing), new NICs get vCenter's keys (4000, 4001, ...) and labels, edits get a
// deviceInfo and a new MAC, disk edits move to plan.diskEdits. nics counts the clone's NICs.
func normalizeChanges(changes []types.BaseVirtualDeviceConfigSpec, plan *clonePlan, nics *int) (
	[]types.BaseVirtualDeviceConfigSpec, types.BaseMethodFault) {
	var kept []types.BaseVirtualDeviceConfigSpec
	for i, change := range changes {
		spec := change.GetVirtualDeviceConfigSpec()
		invalid := &types.InvalidDeviceSpec{DeviceIndex: int32(i)}
		if spec.Device == nil {
			return nil, invalid
		}
		device := spec.Device.GetVirtualDevice()
		edit := spec.Operation == types.VirtualDeviceConfigSpecOperationEdit
		if edit && device.DeviceInfo == nil {
			device.DeviceInfo = &types.Description{}
		}
		switch d := spec.Device.(type) {
		case types.BaseVirtualEthernetCard:
			card := d.GetVirtualEthernetCard()
			if !knownPortgroup(card) {
				return nil, invalid
			}
			switch spec.Operation {
			case types.VirtualDeviceConfigSpecOperationAdd:
				*nics++
				if card.AddressType != string(types.VirtualEthernetCardMacTypeManual) {
					card.MacAddress = newMAC()
				}
				if card.Key <= 0 { // numbered and labelled as vCenter does
					card.Key = plan.nextNICKey
					plan.nextNICKey++
				}
				if card.DeviceInfo == nil || card.DeviceInfo.GetDescription().Label == "" {
					card.DeviceInfo = &types.Description{Label: fmt.Sprintf("Network adapter %d", *nics)}
				}
			case types.VirtualDeviceConfigSpecOperationRemove:
				*nics--
			case types.VirtualDeviceConfigSpecOperationEdit:
				current, ok := plan.devices.FindByKey(card.Key).(types.BaseVirtualEthernetCard)
				if !ok {
					return nil, invalid
				}
				if card.AddressType != string(types.VirtualEthernetCardMacTypeManual) {
					card.MacAddress = current.GetVirtualEthernetCard().MacAddress // not the template's
				}
			}
		case *types.VirtualDisk:
			if edit {
				if _, ok := plan.devices.FindByKey(d.Key).(*types.VirtualDisk); !ok {
					return nil, invalid
				}
				plan.diskEdits = append(plan.diskEdits, d)
				continue
			}
		}
		kept = append(kept, change)
	}
	return kept, nil
}

// knownPortgroup fills a standard backing's deviceName from its network and says whether the port group
// exists (the simulator dereferences a nil network otherwise). Other backings pass unchanged.
func knownPortgroup(card *types.VirtualEthernetCard) bool {
	b, ok := card.Backing.(*types.VirtualEthernetCardNetworkBackingInfo)
	if !ok {
		return true
	}
	if b.DeviceName == "" && b.Network != nil {
		if e, ok := simulator.Map.Get(*b.Network).(mo.Entity); ok {
			b.DeviceName = e.Entity().Name
		}
	}
	return b.DeviceName != "" && findNetwork(b.DeviceName) != nil
}

// deviceCopies returns deep copies of the template's devices for one clone, NICs with new MACs.
func deviceCopies(devices []types.BaseVirtualDevice) ([]types.BaseVirtualDevice, error) {
	copies, err := copyDevices(devices)
	if err != nil {
		return nil, err
	}
	for _, card := range ethernetCards(copies) {
		if card.AddressType != string(types.VirtualEthernetCardMacTypeManual) {
			card.MacAddress = newMAC()
		}
	}
	return copies, nil
}

// copyDevices deep-copies devices through the vim25 XML encoding (the simulator's own deepCopy way).
func copyDevices(devices []types.BaseVirtualDevice) ([]types.BaseVirtualDevice, error) {
	data, err := xml.Marshal(types.ArrayOfVirtualDevice{VirtualDevice: devices})
	if err != nil {
		return nil, err
	}
	var out types.ArrayOfVirtualDevice
	decoder := xml.NewDecoder(bytes.NewReader(data))
	decoder.TypeFunc = types.TypeFunc()
	if err := decoder.Decode(&out); err != nil {
		return nil, err
	}
	return out.VirtualDevice, nil
}

// finishClone completes a clone the simulator created: hardware, disks, host, guest.net, customization
// and power. Called with the clone locked.
func finishClone(ctx *simulator.Context, clone *simulator.VirtualMachine, req *types.CloneVM_Task,
	plan *clonePlan) types.BaseMethodFault {
	applyHardware(clone, req.Spec.Config)
	resizeDisks(clone, plan.diskEdits)
	if plan.host != nil {
		placeVM(clone, plan.host)
	}
	syncGuestNet(clone)
	if req.Spec.Customization != nil {
		res := clone.CustomizeVMTask(&types.CustomizeVM_Task{This: clone.Self, Spec: *req.Spec.Customization})
		body := res.(*methods.CustomizeVM_TaskBody)
		if fault := taskFault(body.Fault_, body.Res); fault != nil {
			return fault
		}
	}
	if req.Spec.PowerOn {
		res := clone.PowerOnVMTask(ctx, &types.PowerOnVM_Task{This: clone.Self})
		body := res.(*methods.PowerOnVM_TaskBody)
		if fault := taskFault(body.Fault_, body.Res); fault != nil {
			return fault
		}
	}
	return nil
}

// taskFault returns the fault of a task-returning method's response (a SOAP fault or a failed task).
func taskFault(soapFault *soap.Fault, res interface{}) types.BaseMethodFault {
	if soapFault != nil {
		if fault, ok := soapFault.VimFault().(types.BaseMethodFault); ok {
			return fault
		}
		return &types.SystemError{Reason: soapFault.String}
	}
	var ref types.ManagedObjectReference
	switch r := res.(type) {
	case *types.CustomizeVM_TaskResponse:
		ref = r.Returnval
	case *types.PowerOnVM_TaskResponse:
		ref = r.Returnval
	default:
		return nil
	}
	if task, ok := simulator.Map.Get(ref).(*simulator.Task); ok && task.Info.Error != nil {
		return task.Info.Error.Fault
	}
	return nil
}

func applyHardware(vm *simulator.VirtualMachine, config *types.VirtualMachineConfigSpec) {
	if config == nil {
		return
	}
	var changes []types.PropertyChange
	if config.NumCPUs > 0 {
		changes = append(changes,
			types.PropertyChange{Name: "config.hardware.numCPU", Val: config.NumCPUs},
			types.PropertyChange{Name: "summary.config.numCpu", Val: config.NumCPUs})
	}
	if config.NumCoresPerSocket > 0 {
		changes = append(changes, types.PropertyChange{Name: "config.hardware.numCoresPerSocket", Val: config.NumCoresPerSocket})
	}
	if config.MemoryMB > 0 {
		changes = append(changes,
			types.PropertyChange{Name: "config.hardware.memoryMB", Val: int32(config.MemoryMB)},
			types.PropertyChange{Name: "summary.config.memorySizeMB", Val: int32(config.MemoryMB)})
	}
	if config.Annotation != "" {
		changes = append(changes,
			types.PropertyChange{Name: "config.annotation", Val: config.Annotation},
			types.PropertyChange{Name: "summary.config.annotation", Val: config.Annotation})
	}
	if len(changes) > 0 {
		simulator.Map.Update(vm, changes)
	}
}

// resizeDisks grows the clone's disks (same keys as the template's) to the edited capacities.
func resizeDisks(vm *simulator.VirtualMachine, edits []*types.VirtualDisk) {
	if len(edits) == 0 {
		return
	}
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	for _, edit := range edits {
		disk, ok := devices.FindByKey(edit.Key).(*types.VirtualDisk)
		if !ok {
			continue
		}
		want := edit.CapacityInBytes
		if kb := edit.CapacityInKB * 1024; kb > want {
			want = kb
		}
		if want > disk.CapacityInBytes && want > disk.CapacityInKB*1024 {
			disk.CapacityInBytes = want
			disk.CapacityInKB = want / 1024
		}
	}
	simulator.Map.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: []types.BaseVirtualDevice(devices)}})
}

// poolHosts returns the hosts of the compute resource owning a resource pool.
func poolHosts(pool types.ManagedObjectReference) []types.ManagedObjectReference {
	rp, ok := simulator.Map.Get(pool).(*simulator.ResourcePool)
	if !ok {
		return nil
	}
	switch owner := simulator.Map.Get(rp.Owner).(type) {
	case *simulator.ClusterComputeResource:
		return owner.Host
	case *mo.ComputeResource:
		return owner.Host
	}
	return nil
}

// leastLoaded returns the host with the fewest VMs (the first such in cluster order), as DRS would
// spread new VMs.
func leastLoaded(hosts []types.ManagedObjectReference) *simulator.HostSystem {
	var best *simulator.HostSystem
	for _, ref := range hosts {
		host, ok := simulator.Map.Get(ref).(*simulator.HostSystem)
		if ok && (best == nil || len(host.Vm) < len(best.Vm)) {
			best = host
		}
	}
	return best
}

// placeVM moves a (powered off, just created) VM to host.
func placeVM(vm *simulator.VirtualMachine, host *simulator.HostSystem) {
	if vm.Runtime.Host != nil && *vm.Runtime.Host == host.Self {
		return
	}
	if vm.Runtime.Host != nil {
		if old, ok := simulator.Map.Get(*vm.Runtime.Host).(*simulator.HostSystem); ok {
			simulator.Map.RemoveReference(old, &old.Vm, vm.Self)
		}
	}
	simulator.Map.AppendReference(host, &host.Vm, vm.Self)
	ref := host.Self
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "runtime.host", Val: &ref},
		{Name: "summary.runtime.host", Val: &ref},
	})
}

// ethernetCards returns the NICs of a device list.
func ethernetCards(devices []types.BaseVirtualDevice) []*types.VirtualEthernetCard {
	var cards []*types.VirtualEthernetCard
	for _, device := range devices {
		if card, ok := device.(types.BaseVirtualEthernetCard); ok {
			cards = append(cards, card.GetVirtualEthernetCard())
		}
	}
	return cards
}

// syncGuestNet rebuilds guest.net from the VM's NICs in key order: one entry per NIC with its MAC and
// port group name, keeping what a NIC's entry already had (addresses).
func syncGuestNet(vm *simulator.VirtualMachine) {
	cards := ethernetCards(vm.Config.Hardware.Device)
	sort.SliceStable(cards, func(i, j int) bool { return cards[i].Key < cards[j].Key })
	var nets []types.GuestNicInfo
	for _, card := range cards {
		entry := types.GuestNicInfo{Connected: true, DeviceConfigId: card.Key}
		for _, old := range vm.Guest.Net {
			if old.DeviceConfigId == card.Key {
				entry = old
			}
		}
		entry.MacAddress = card.MacAddress
		entry.Network = backingName(card.Backing)
		nets = append(nets, entry)
	}
	simulator.Map.Update(vm, []types.PropertyChange{{Name: "guest.net", Val: nets}})
}

// backingName is the port group name a NIC backing points at.
func backingName(backing types.BaseVirtualDeviceBackingInfo) string {
	switch b := backing.(type) {
	case *types.VirtualEthernetCardNetworkBackingInfo:
		return b.DeviceName
	case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
		ref := types.ManagedObjectReference{Type: "DistributedVirtualPortgroup", Value: b.Port.PortgroupKey}
		if e, ok := simulator.Map.Get(ref).(mo.Entity); ok {
			return e.Entity().Name
		}
	}
	return ""
}

// failedTask creates a CloneVm task on vm that fails with fault.
func failedTask(vm *simulator.VirtualMachine, fault types.BaseMethodFault) types.ManagedObjectReference {
	return simulator.CreateTask(vm, "cloneVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, fault
	}).Run()
}

func cloneResponse(task types.ManagedObjectReference) soap.HasFault {
	return &methods.CloneVM_TaskBody{Res: &types.CloneVM_TaskResponse{Returnval: task}}
}

var (
	macMutex sync.Mutex
	usedMACs = map[string]bool{}
)

// newMAC returns a random address in VMware's generated range 00:0c:29:xx:xx:xx, never returned before
// and not the template's.
func newMAC() string {
	macMutex.Lock()
	defer macMutex.Unlock()
	for {
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			panic(err) // the kernel's random source failed
		}
		mac := fmt.Sprintf("00:0c:29:%02x:%02x:%02x", b[0], b[1], b[2])
		if !usedMACs[mac] {
			usedMACs[mac] = true
			return mac
		}
	}
}

// reserveMACs records addresses already in use (the template's).
func reserveMACs(devices []types.BaseVirtualDevice) {
	macMutex.Lock()
	defer macMutex.Unlock()
	for _, card := range ethernetCards(devices) {
		usedMACs[card.MacAddress] = true
	}
}
