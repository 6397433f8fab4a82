package main

// The lab's datastores as vCenter shows shared datastores on a SAN: type VMFS with a VMFS volume as
// their info. govmomi 0.24.2 makes them "OTHER" (a local datastore), which OpenStack's VMware drivers
// skip: nova, cinder and glance place disks only on VMFS, NFS and vSAN datastores (nova-compute would
// report no disk at all). The files stay in the datastore's directory (info.url), where the simulator
// keeps them.

import (
	"crypto/sha256"
	"fmt"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	vmfsMajorVersion = 6
	vmfsVersion      = "6.82"
	vmfsBlockSizeMB  = 1
)

// asSharedVMFS turns a freshly created datastore into a shared VMFS 6 datastore on one SAN LUN.
func asSharedVMFS(ds *simulator.Datastore) {
	info := *ds.Info.GetDatastoreInfo()
	id := sha256.Sum256([]byte(ds.Name))
	ds.Info = &types.VmfsDatastoreInfo{
		DatastoreInfo: info,
		Vmfs: &types.HostVmfsVolume{
			HostFileSystemVolume: types.HostFileSystemVolume{
				Type:     string(types.HostFileSystemVolumeFileSystemTypeVMFS),
				Name:     ds.Name,
				Capacity: ds.Summary.Capacity,
			},
			BlockSizeMb:  vmfsBlockSizeMB,
			BlockSize:    vmfsBlockSizeMB * 1024,
			MaxBlocks:    int32(ds.Summary.Capacity / (vmfsBlockSizeMB << 20)),
			MajorVersion: vmfsMajorVersion,
			Version:      vmfsVersion,
			Uuid:         fmt.Sprintf("%x-%x-%x-%x", id[0:4], id[4:8], id[8:10], id[10:16]),
			Extent:       []types.HostScsiDiskPartition{{DiskName: fmt.Sprintf("naa.6000c29%x", id[16:28]), Partition: 1}},
			Ssd:          types.NewBool(true),
			Local:        types.NewBool(false),
		},
	}
	ds.Summary.Type = string(types.HostFileSystemVolumeFileSystemTypeVMFS)
}
