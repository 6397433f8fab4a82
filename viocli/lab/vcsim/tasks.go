package main

// Tasks as vCenter reports them. govmomi 0.24.2 names a task after its internal runner ("CloneVm",
// descriptionId "VirtualMachine.cloneVm"), which pyvmomi cannot map to a method, sets entityName to the
// moref value, and gives snapshot tasks the snapshot as entity, which pyvmomi cannot even deserialize
// (TaskInfo.entity must be a ManagedEntity). taskFixer rewrites each new task before it runs: the
// method's WSDL name ("CloneVM_Task"), vCenter's descriptionId ("VirtualMachine.clone", the keys of the
// simulator's own recorded vCenter task descriptions), the VM as the entity of snapshot tasks (their
// result is then the snapshot: a lab extension, vCenter returns nothing), and the entity's name as
// entityName (no entity for internal tasks on managers). It also hooks clone tasks (clone.go). Tasks
// appear in TaskManager.recentTask as before.

import (
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type taskName struct {
	wsdl          string
	descriptionID string
}

// taskNames maps the simulator's descriptionId to vCenter's method name and descriptionId.
var taskNames = map[string]taskName{
	"VirtualMachine.cloneVm":                  {"CloneVM_Task", "VirtualMachine.clone"},
	"VirtualMachine.powerOn":                  {"PowerOnVM_Task", "VirtualMachine.powerOn"},
	"VirtualMachine.powerOff":                 {"PowerOffVM_Task", "VirtualMachine.powerOff"},
	"VirtualMachine.suspend":                  {"SuspendVM_Task", "VirtualMachine.suspend"},
	"VirtualMachine.reset":                    {"ResetVM_Task", "VirtualMachine.reset"},
	"VirtualMachine.createSnapshot":           {"CreateSnapshot_Task", "VirtualMachine.createSnapshot"},
	"VirtualMachine.revertSnapshot":           {"RevertToCurrentSnapshot_Task", "VirtualMachine.revertToCurrentSnapshot"},
	"VirtualMachine.RemoveAllSnapshots":       {"RemoveAllSnapshots_Task", "VirtualMachine.removeAllSnapshots"},
	"VirtualMachineSnapshot.revertToSnapshot": {"RevertToSnapshot_Task", "vm.Snapshot.revert"},
	"VirtualMachineSnapshot.removeSnapshot":   {"RemoveSnapshot_Task", "vm.Snapshot.remove"},
	"VirtualMachine.destroy":                  {"Destroy_Task", "VirtualMachine.destroy"},
	"VirtualMachine.customizeVm":              {"CustomizeVM_Task", "VirtualMachine.customize"},
	"VirtualMachine.reconfigVm":               {"ReconfigVM_Task", "VirtualMachine.reconfigure"},
	"VirtualMachine.relocateVm":               {"RelocateVM_Task", "VirtualMachine.relocate"},
	"VirtualMachine.upgradeVm":                {"UpgradeVM_Task", "VirtualMachine.upgradeVirtualHardware"},
	"Folder.createVm":                         {"CreateVM_Task", "Folder.createVm"},
}

// taskFixer is a registry handler: the registry calls PutObject for every new object, synchronously,
// before the object's creator (simulator.CreateTask) returns and runs the task.
type taskFixer struct{}

func (taskFixer) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "ViocliTaskFixer", Value: "viocli-task-fixer"}
}

func (taskFixer) PutObject(obj mo.Reference) {
	task, ok := obj.(*simulator.Task)
	if !ok {
		return
	}
	info := &task.Info
	if info.DescriptionId == "VirtualMachine.cloneVm" && info.Entity != nil {
		completeCloneTask(task)
	}
	if info.DescriptionId == "VirtualMachine.reconfigVm" && info.Entity != nil {
		announceExtraConfig(task, *info.Entity)
	}
	if name, ok := taskNames[info.DescriptionId]; ok {
		info.Name = name.wsdl
		info.DescriptionId = name.descriptionID
	} else if wsdl := info.Name + "_Task"; !strings.HasSuffix(info.Name, "_Task") && knownMethod(wsdl) {
		info.Name = wsdl // e.g. DeleteDatastoreFile_Task, DeleteVirtualDisk_Task
	}
	if info.Entity == nil {
		return
	}
	if snapshot, ok := simulator.Map.Get(*info.Entity).(*simulator.VirtualMachineSnapshot); ok {
		vm := snapshot.Vm
		info.Entity = &vm
		resultIsSnapshot(task, snapshot.Self)
	}
	if entity, ok := simulator.Map.Get(*info.Entity).(mo.Entity); ok {
		info.EntityName = entity.Entity().Name
	} else {
		// Internal tasks on managers (VirtualDiskManager, FileManager, e.g. a destroy's file deletion):
		// TaskInfo.entity must be a ManagedEntity, so these have none.
		info.Entity = nil
		info.EntityName = ""
	}
}

// resultIsSnapshot makes a snapshot task (revert, remove), which has no result on vCenter, return the
// snapshot it acted on: its entity is now the VM, and a watcher needs to know which snapshot.
func resultIsSnapshot(task *simulator.Task, snapshot types.ManagedObjectReference) {
	run := task.Execute
	task.Execute = func(t *simulator.Task) (types.AnyType, types.BaseMethodFault) {
		result, fault := run(t)
		if fault == nil && result == nil {
			result = snapshot
		}
		return result, fault
	}
}

// announceExtraConfig makes a reconfigure's extraConfig changes visible to property collectors: 0.24.2
// edits vm.Config.ExtraConfig in place without an update, so a WaitForUpdatesEx on config.extraConfig
// (how viocli learns the SSH host key a guest publishes in guestinfo) would never wake up.
func announceExtraConfig(task *simulator.Task, ref types.ManagedObjectReference) {
	run := task.Execute
	task.Execute = func(t *simulator.Task) (types.AnyType, types.BaseMethodFault) {
		result, fault := run(t)
		if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); ok && fault == nil {
			simulator.Map.Update(vm, []types.PropertyChange{{Name: "config.extraConfig", Val: vm.Config.ExtraConfig}})
		}
		return result, fault
	}
}

func (taskFixer) UpdateObject(mo.Reference, []types.PropertyChange) {}

func (taskFixer) RemoveObject(types.ManagedObjectReference) {}

// clearRecentTasks empties TaskManager.recentTask (the tasks that built the inventory), so that a
// watcher of recentTask sees only its clients' tasks.
func clearRecentTasks() {
	content := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content
	manager := simulator.Map.Get(*content.TaskManager).(*simulator.TaskManager)
	manager.Lock()
	defer manager.Unlock()
	simulator.Map.Update(manager, []types.PropertyChange{{Name: "recentTask", Val: []types.ManagedObjectReference{}}})
}

// knownMethod says whether name is a vim25 method (its request type is registered).
func knownMethod(name string) bool {
	_, ok := types.TypeFunc()(name)
	return ok
}
