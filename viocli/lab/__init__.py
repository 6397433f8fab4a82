"""The all-in-one lab: a simulated vCenter, VM nodes in network namespaces, and an NFS server."""
