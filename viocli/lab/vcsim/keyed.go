package main

// Keyed property paths: `config.extraConfig["nvp.vm-uuid"]`, `config.hardware.device[4000].backing`.
// vCenter's property collector selects the element of an array property whose `key` is the one in
// brackets (and then, optionally, a field of it), and leaves the property out when no element has that
// key. govmomi 0.24.2 knows no brackets and reports such a path as an InvalidProperty in missingSet,
// which oslo.vmware raises as an error: nova-compute lists its instances by
// config.extraConfig["nvp.vm-uuid"] and cinder-volume indexes its volumes by
// config.extraConfig["cinder.volume.id"] when it starts. fetchPC (fetch.go) asks the simulator for
// the array instead and picks the element itself.

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/vim25/types"
)

// keyedPath is a property path with one key: base["key"].rest (rest may be empty).
type keyedPath struct {
	path string
	base string
	key  string
	rest []string
}

// parseKeyedPath splits a path with a bracketed key; ok is false for a plain path or a malformed one.
func parseKeyedPath(path string) (keyedPath, bool) {
	open := strings.IndexByte(path, '[')
	if open <= 0 {
		return keyedPath{}, false
	}
	length := strings.IndexByte(path[open:], ']')
	if length < 0 {
		return keyedPath{}, false
	}
	key := path[open+1 : open+length]
	if unquoted, err := strconv.Unquote(key); err == nil {
		key = unquoted
	}
	p := keyedPath{path: path, base: path[:open], key: key}
	if rest := strings.TrimPrefix(path[open+length+1:], "."); rest != "" {
		p.rest = strings.Split(rest, ".")
	}
	return p, true
}

// keyedRequest is a retrieval whose keyed paths were replaced by their base paths.
type keyedRequest struct {
	specs    []types.PropertyFilterSpec
	keyed    map[string][]keyedPath // by base path
	explicit map[string]bool        // base paths also asked for as such
}

// splitKeyedPaths copies the specs with each keyed path replaced by its base (once per spec).
func splitKeyedPaths(specs []types.PropertyFilterSpec) (keyedRequest, bool) {
	r := keyedRequest{keyed: map[string][]keyedPath{}, explicit: map[string]bool{}}
	for _, spec := range specs {
		props := make([]types.PropertySpec, len(spec.PropSet))
		for i, prop := range spec.PropSet {
			props[i] = prop
			props[i].PathSet = nil
			seen := map[string]bool{}
			for _, path := range prop.PathSet {
				keyed, ok := parseKeyedPath(path)
				if !ok {
					r.explicit[path] = true
					keyed.base = path
				} else {
					r.keyed[keyed.base] = append(r.keyed[keyed.base], keyed)
				}
				if !seen[keyed.base] {
					seen[keyed.base] = true
					props[i].PathSet = append(props[i].PathSet, keyed.base)
				}
			}
		}
		spec.PropSet = props
		r.specs = append(r.specs, spec)
	}
	return r, len(r.keyed) > 0
}

// apply replaces, in each object, the base properties by the keyed elements asked for.
func (r keyedRequest) apply(objects []types.ObjectContent) {
	for i := range objects {
		object := &objects[i]
		var props []types.DynamicProperty
		for _, prop := range object.PropSet {
			for _, keyed := range r.keyed[prop.Name] {
				if val, ok := keyed.pick(prop.Val); ok {
					props = append(props, types.DynamicProperty{Name: keyed.path, Val: val})
				}
			}
			if r.explicit[prop.Name] || len(r.keyed[prop.Name]) == 0 {
				props = append(props, prop)
			}
		}
		object.PropSet = props
		var missing []types.MissingProperty
		for _, m := range object.MissingSet {
			for _, keyed := range r.keyed[m.Path] {
				missing = append(missing, types.MissingProperty{Path: keyed.path, Fault: m.Fault})
			}
			if r.explicit[m.Path] || len(r.keyed[m.Path]) == 0 {
				missing = append(missing, m)
			}
		}
		object.MissingSet = missing
	}
}

// pick returns the element of the array value whose key matches (then its field rest), if any.
func (p keyedPath) pick(array types.AnyType) (types.AnyType, bool) {
	list := reflect.ValueOf(array)
	for list.Kind() == reflect.Ptr || list.Kind() == reflect.Interface {
		list = list.Elem()
	}
	if list.Kind() == reflect.Struct && list.NumField() == 1 { // ArrayOfX{X: []...}
		list = list.Field(0)
	}
	if list.Kind() != reflect.Slice {
		return nil, false
	}
	for i := 0; i < list.Len(); i++ {
		element := list.Index(i)
		if key, ok := field(element, "Key"); ok && fmt.Sprint(key.Interface()) == p.key {
			return p.descend(element)
		}
	}
	return nil, false
}

// descend follows rest from the element; an unset field is no value.
func (p keyedPath) descend(value reflect.Value) (types.AnyType, bool) {
	for _, name := range p.rest {
		next, ok := field(value, strings.ToUpper(name[:1])+name[1:])
		if !ok {
			return nil, false
		}
		value = next
	}
	for value.Kind() == reflect.Interface {
		value = value.Elem()
	}
	if !value.IsValid() || (value.Kind() == reflect.Ptr && value.IsNil()) {
		return nil, false
	}
	if value.Kind() == reflect.Struct && value.CanAddr() {
		value = value.Addr() // a data object travels as a pointer, as the simulator's own values do
	}
	return value.Interface(), true
}

// field returns a (possibly promoted) field of a struct behind interfaces and pointers.
func field(value reflect.Value, name string) (reflect.Value, bool) {
	for value.Kind() == reflect.Ptr || value.Kind() == reflect.Interface {
		if value.IsNil() {
			return reflect.Value{}, false
		}
		value = value.Elem()
	}
	if value.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	f := value.FieldByName(name)
	return f, f.IsValid()
}
