package main

// TraversalSpecs applied to objects of their type only. govmomi 0.24.2 follows a TraversalSpec's path
// from every object that has a field of that name, whatever the spec's type. With oslo.vmware's
// recursive spec (vim_util.get_objects, which nova, cinder and glance use for every lookup) "rp_to_rp"
// (ResourcePool.resourcePool) is then followed from a VM to its pool and "rp_to_vm" from the pool back
// to the VM, forever: the whole simulator dies of a stack overflow as soon as one VM lives in a
// resource pool. fetchPC expands the traversal itself, as vCenter does (a spec applies to objects of
// its type or of a subtype; each object is entered once per spec), and hands the simulator the flat
// list of objects to collect.

import (
	"path"
	"reflect"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type visit struct {
	ref  types.ManagedObjectReference
	spec *types.TraversalSpec
}

// traversal expands the object set of one PropertyFilterSpec.
type traversal struct {
	ctx     *simulator.Context
	named   map[string]*types.TraversalSpec
	visited map[visit]bool
	found   map[types.ManagedObjectReference]bool
	objects []types.ObjectSpec
}

// flattenTraversals returns the specs with every selectSet replaced by the objects it selects.
func flattenTraversals(ctx *simulator.Context, specs []types.PropertyFilterSpec) ([]types.PropertyFilterSpec,
	types.BaseMethodFault) {
	out := make([]types.PropertyFilterSpec, 0, len(specs))
	for _, spec := range specs {
		t := &traversal{
			ctx:     ctx,
			named:   map[string]*types.TraversalSpec{},
			visited: map[visit]bool{},
			found:   map[types.ManagedObjectReference]bool{},
		}
		for _, o := range spec.ObjectSet {
			t.register(o.SelectSet, map[*types.TraversalSpec]bool{})
		}
		for _, o := range spec.ObjectSet {
			if fault := t.start(o); fault != nil {
				return nil, fault
			}
		}
		spec.ObjectSet = t.objects
		out = append(out, spec)
	}
	return out, nil
}

// register records the named TraversalSpecs anywhere in the tree (a SelectionSpec may name one
// defined deeper or later).
func (t *traversal) register(set []types.BaseSelectionSpec, seen map[*types.TraversalSpec]bool) {
	for _, s := range set {
		ts, ok := s.(*types.TraversalSpec)
		if !ok || seen[ts] {
			continue
		}
		seen[ts] = true
		if ts.Name != "" {
			t.named[ts.Name] = ts
		}
		t.register(ts.SelectSet, seen)
	}
}

// start adds an ObjectSpec's object (unless skipped) and what its selectSet reaches. A missing object
// is passed on unchanged: the simulator answers it as it always does.
func (t *traversal) start(o types.ObjectSpec) types.BaseMethodFault {
	if len(o.SelectSet) == 0 {
		t.objects = append(t.objects, o)
		return nil
	}
	value, ok := t.object(o.Obj)
	if !ok {
		t.objects = append(t.objects, types.ObjectSpec{Obj: o.Obj, Skip: o.Skip})
		return nil
	}
	if o.Skip == nil || !*o.Skip {
		t.add(o.Obj)
	}
	return t.walk(o.Obj, value, o.SelectSet)
}

func (t *traversal) walk(ref types.ManagedObjectReference, value reflect.Value,
	set []types.BaseSelectionSpec) types.BaseMethodFault {
	for _, s := range set {
		ts, ok := s.(*types.TraversalSpec)
		if !ok {
			if ts = t.named[s.GetSelectionSpec().Name]; ts == nil {
				return &types.InvalidArgument{InvalidProperty: "undefined TraversalSpec name"}
			}
		}
		if !isA(ref, value, ts.Type) {
			continue
		}
		for _, next := range t.refsAt(ref, value, ts.Path) {
			if ts.Skip == nil || !*ts.Skip {
				t.add(next)
			}
			if t.visited[visit{next, ts}] {
				continue
			}
			t.visited[visit{next, ts}] = true
			if nextValue, ok := t.object(next); ok {
				if fault := t.walk(next, nextValue, ts.SelectSet); fault != nil {
					return fault
				}
			}
		}
	}
	return nil
}

func (t *traversal) add(ref types.ManagedObjectReference) {
	if !t.found[ref] {
		t.found[ref] = true
		t.objects = append(t.objects, types.ObjectSpec{Obj: ref, Skip: types.NewBool(false)})
	}
}

// object returns the managed object (its mo struct) as the session sees it.
func (t *traversal) object(ref types.ManagedObjectReference) (reflect.Value, bool) {
	var obj mo.Reference
	if t.ctx.Session != nil {
		obj = t.ctx.Session.Get(ref)
	} else {
		obj = simulator.Map.Get(ref)
	}
	if getter, ok := obj.(interface{ Get() mo.Reference }); ok {
		obj = getter.Get() // e.g. the EventHistoryCollector
	}
	if obj == nil {
		return reflect.Value{}, false
	}
	value := reflect.ValueOf(obj)
	for value.Kind() == reflect.Ptr {
		value = value.Elem()
	}
	// A simulator type embeds its mo type first (simulator.VirtualMachine{mo.VirtualMachine, ...}).
	for value.Kind() == reflect.Struct && path.Base(value.Type().PkgPath()) != "mo" {
		if value.NumField() == 0 {
			return reflect.Value{}, false
		}
		value = value.Field(0)
	}
	return value, value.Kind() == reflect.Struct
}

// refsAt reads the references at a property path of an object, under the object's lock.
func (t *traversal) refsAt(ref types.ManagedObjectReference, value reflect.Value,
	propertyPath string) []types.ManagedObjectReference {
	var refs []types.ManagedObjectReference
	t.ctx.WithLock(ref, func() {
		for _, name := range strings.Split(propertyPath, ".") {
			next, ok := field(value, strings.ToUpper(name[:1])+name[1:])
			if !ok {
				return
			}
			value = next
		}
		switch v := value.Interface().(type) {
		case types.ManagedObjectReference:
			refs = []types.ManagedObjectReference{v}
		case *types.ManagedObjectReference:
			if v != nil {
				refs = []types.ManagedObjectReference{*v}
			}
		case []types.ManagedObjectReference:
			refs = append(refs, v...)
		}
	})
	return refs
}

// isA says whether the object is of the type or a subtype (its mo struct embeds the type's).
func isA(ref types.ManagedObjectReference, value reflect.Value, typeName string) bool {
	if ref.Type == typeName || value.Type().Name() == typeName {
		return true
	}
	f, ok := value.Type().FieldByName(typeName)
	return ok && f.Anonymous
}
