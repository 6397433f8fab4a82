package main

// pyvmomi reads a managed object's property (vm.snapshot, vm.resourcePool, ...) with the internal
// Fetch method. govmomi 0.24.2's PropertyCollector.Fetch panics (index out of range) when the property
// is unset, where vCenter answers with no value (None in pyvmomi): a template's resourcePool, a VM
// without snapshots' snapshot. fetchPC replaces the PropertyCollector singleton and answers those.
// Its RetrievePropertiesEx also follows traversal specs by type (traverse.go) and answers keyed
// property paths (keyed.go), as vCenter does.

import (
	"reflect"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// fetchPC is the PropertyCollector with Fetch of unset properties answered. The simulator makes one
// per session with reflect.New of the registered type, so it must work from its zero value.
type fetchPC struct {
	simulator.PropertyCollector
}

// FetchResponse mirrors the simulator's internal type: the SOAP response element is named after it.
type FetchResponse struct {
	Returnval types.AnyType `xml:"returnval,omitempty,typeattr"`
}

type fetchBody struct {
	Res    *FetchResponse `xml:"FetchResponse,omitempty"`
	Fault_ *soap.Fault    `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (b *fetchBody) Fault() *soap.Fault { return b.Fault_ }

// installFetchPC puts fetchPC in place of the PropertyCollector singleton (same moref).
func installFetchPC() {
	ref := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content.PropertyCollector
	original := simulator.Map.Get(ref).(*simulator.PropertyCollector)
	pc := &fetchPC{}
	pc.PropertyCollector.PropertyCollector = original.PropertyCollector
	simulator.Map.Put(pc)
}

// Fetch is dispatched by reflection with the simulator's internal request type, hence interface{}.
func (pc *fetchPC) Fetch(ctx *simulator.Context, req interface{}) soap.HasFault {
	request := reflect.ValueOf(req).Elem()
	this, _ := request.FieldByName("This").Interface().(types.ManagedObjectReference)
	prop, _ := request.FieldByName("Prop").Interface().(string)
	if this.Type != "ServiceInstance" && pc.unset(ctx, this, prop) {
		return &fetchBody{Res: &FetchResponse{}}
	}
	out := reflect.ValueOf(&pc.PropertyCollector).MethodByName("Fetch").Call(
		[]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(req)})
	return out[0].Interface().(soap.HasFault)
}

// unset says whether the property exists on the object but has no value.
func (pc *fetchPC) unset(ctx *simulator.Context, this types.ManagedObjectReference, prop string) bool {
	if simulator.Map.Get(this) == nil {
		return false // a supertype moref (ManagedEntity): the simulator's Fetch resolves it
	}
	res := pc.RetrievePropertiesEx(ctx, &types.RetrievePropertiesEx{
		SpecSet: []types.PropertyFilterSpec{{
			PropSet:   []types.PropertySpec{{Type: this.Type, PathSet: []string{prop}}},
			ObjectSet: []types.ObjectSpec{{Obj: this}},
		}},
	})
	body, ok := res.(*methods.RetrievePropertiesExBody)
	if !ok || body.Res == nil || body.Res.Returnval == nil || len(body.Res.Returnval.Objects) == 0 {
		return false
	}
	obj := body.Res.Returnval.Objects[0]
	return len(obj.PropSet) == 0 && len(obj.MissingSet) == 0
}

// RetrievePropertiesEx follows traversals by type (traverse.go) and answers keyed paths (keyed.go);
// the simulator collects the properties.
func (pc *fetchPC) RetrievePropertiesEx(ctx *simulator.Context, req *types.RetrievePropertiesEx) soap.HasFault {
	specs, fault := flattenTraversals(ctx, req.SpecSet)
	if fault != nil {
		return &methods.RetrievePropertiesExBody{Fault_: simulator.Fault("", fault)}
	}
	keyed, hasKeyed := splitKeyedPaths(specs)
	if hasKeyed {
		specs = keyed.specs
	}
	res := pc.PropertyCollector.RetrievePropertiesEx(ctx, &types.RetrievePropertiesEx{
		This: req.This, SpecSet: specs, Options: req.Options,
	})
	body, ok := res.(*methods.RetrievePropertiesExBody)
	if ok && hasKeyed && body.Res != nil && body.Res.Returnval != nil {
		keyed.apply(body.Res.Returnval.Objects)
	}
	return res
}

// RetrieveProperties is RetrievePropertiesEx without options (the simulator's would call its own Ex).
func (pc *fetchPC) RetrieveProperties(ctx *simulator.Context, req *types.RetrieveProperties) soap.HasFault {
	body := &methods.RetrievePropertiesBody{}
	res := pc.RetrievePropertiesEx(ctx, &types.RetrievePropertiesEx{This: req.This, SpecSet: req.SpecSet})
	if res.Fault() != nil {
		body.Fault_ = res.Fault()
		return body
	}
	body.Res = &types.RetrievePropertiesResponse{}
	if result := res.(*methods.RetrievePropertiesExBody).Res.Returnval; result != nil {
		body.Res.Returnval = result.Objects
	}
	return body
}
