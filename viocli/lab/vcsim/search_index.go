package main

// SearchIndex.FindAllByUuid, which govmomi 0.24.2 lacks (it has FindByUuid only). nova finds an
// instance's VM by its instance UUID with it before every operation on the instance, and cinder finds
// a volume's backing VM the same way. It returns every VM (vmSearch) whose BIOS UUID, or instance UUID
// when instanceUuid is set, is the one asked for, or every host with that hardware UUID, within the
// datacenter if one is given; in moref order.

import (
	"reflect"
	"sort"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type searchIndex struct {
	simulator.SearchIndex
}

// installSearchIndex replaces the SearchIndex singleton (same moref), keeping its other methods.
func installSearchIndex() {
	ref := *simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content.SearchIndex
	original := simulator.Map.Get(ref).(*simulator.SearchIndex)
	simulator.Map.Put(&searchIndex{*original})
}

// FindAllByUuid returns the VMs or hosts with the UUID.
func (s *searchIndex) FindAllByUuid(req *types.FindAllByUuid) soap.HasFault {
	kind, path := "HostSystem", []string{"Summary", "Hardware", "Uuid"}
	if req.VmSearch {
		kind, path = "VirtualMachine", []string{"Config", "Uuid"}
		if req.InstanceUuid != nil && *req.InstanceUuid {
			path = []string{"Config", "InstanceUuid"}
		}
	}
	var found []types.ManagedObjectReference
	for _, entity := range simulator.Map.All(kind) {
		match := false
		simulator.Map.WithLock(entity, func() {
			match = stringAt(entity, path) == req.Uuid && (req.Datacenter == nil || inDatacenter(entity, *req.Datacenter))
		})
		if match {
			found = append(found, entity.Reference())
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Value < found[j].Value })
	return &methods.FindAllByUuidBody{Res: &types.FindAllByUuidResponse{Returnval: found}}
}

// stringAt reads a string field path of an object ("" when a step is unset).
func stringAt(obj interface{}, path []string) string {
	value := reflect.ValueOf(obj)
	for _, name := range path {
		next, ok := field(value, name)
		if !ok {
			return ""
		}
		value = next
	}
	if value.Kind() != reflect.String {
		return ""
	}
	return value.String()
}

// inDatacenter says whether the entity's parents lead to the datacenter.
func inDatacenter(entity mo.Entity, datacenter types.ManagedObjectReference) bool {
	for parent := entity.Entity().Parent; parent != nil; {
		if *parent == datacenter {
			return true
		}
		next, ok := simulator.Map.Get(*parent).(mo.Entity)
		if !ok {
			return false
		}
		parent = next.Entity().Parent
	}
	return false
}
