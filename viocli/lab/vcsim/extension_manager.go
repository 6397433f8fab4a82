package main

// The ExtensionManager. govmomi 0.24.2 registers the object but none of its methods; nova-compute's
// VMware driver calls FindExtension, then RegisterExtension, for "org.openstack.compute" when it starts
// (and treats InvalidArgument as "already registered"). Extensions live in memory, listed in the
// manager's extensionList as on vCenter; registering a key twice, or updating or unregistering an
// unknown key, fails as on vCenter.

import (
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type extensionManager struct {
	mo.ExtensionManager
}

// installExtensionManager replaces the simulator's method-less ExtensionManager (same moref).
func installExtensionManager() {
	content := simulator.Map.Get(vim25.ServiceInstance).(*simulator.ServiceInstance).Content
	simulator.Map.Put(&extensionManager{mo.ExtensionManager{Self: *content.ExtensionManager}})
}

// FindExtension returns the extension with the key, or no value.
func (m *extensionManager) FindExtension(req *types.FindExtension) soap.HasFault {
	body := &methods.FindExtensionBody{Res: &types.FindExtensionResponse{}}
	if i := m.index(req.ExtensionKey); i >= 0 {
		extension := m.ExtensionList[i]
		body.Res.Returnval = &extension
	}
	return body
}

// RegisterExtension adds an extension; its key must be new.
func (m *extensionManager) RegisterExtension(ctx *simulator.Context, req *types.RegisterExtension) soap.HasFault {
	extension := req.Extension
	if extension.Key == "" || m.index(extension.Key) >= 0 {
		return &methods.RegisterExtensionBody{Fault_: invalidKey()}
	}
	if extension.LastHeartbeatTime.IsZero() {
		extension.LastHeartbeatTime = time.Now()
	}
	list := append(append([]types.Extension(nil), m.ExtensionList...), extension)
	ctx.Map.Update(m, []types.PropertyChange{{Name: "extensionList", Val: list}})
	return &methods.RegisterExtensionBody{Res: &types.RegisterExtensionResponse{}}
}

// UpdateExtension replaces a registered extension.
func (m *extensionManager) UpdateExtension(ctx *simulator.Context, req *types.UpdateExtension) soap.HasFault {
	i := m.index(req.Extension.Key)
	if i < 0 {
		return &methods.UpdateExtensionBody{Fault_: simulator.Fault("", &types.NotFound{})}
	}
	list := append([]types.Extension(nil), m.ExtensionList...)
	list[i] = req.Extension
	ctx.Map.Update(m, []types.PropertyChange{{Name: "extensionList", Val: list}})
	return &methods.UpdateExtensionBody{Res: &types.UpdateExtensionResponse{}}
}

// UnregisterExtension removes a registered extension.
func (m *extensionManager) UnregisterExtension(ctx *simulator.Context, req *types.UnregisterExtension) soap.HasFault {
	i := m.index(req.ExtensionKey)
	if i < 0 {
		return &methods.UnregisterExtensionBody{Fault_: simulator.Fault("", &types.NotFound{})}
	}
	list := append(append([]types.Extension(nil), m.ExtensionList[:i]...), m.ExtensionList[i+1:]...)
	ctx.Map.Update(m, []types.PropertyChange{{Name: "extensionList", Val: list}})
	return &methods.UnregisterExtensionBody{Res: &types.UnregisterExtensionResponse{}}
}

func (m *extensionManager) index(key string) int {
	for i := range m.ExtensionList {
		if m.ExtensionList[i].Key == key {
			return i
		}
	}
	return -1
}

func invalidKey() *soap.Fault {
	return simulator.Fault("", &types.InvalidArgument{InvalidProperty: "extension.key"})
}
