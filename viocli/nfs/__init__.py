"""NFS without kernel mounts: viocli reads and writes an operator's ``host:/export`` volume through libnfs."""

from viocli.nfs.client import NfsVolume

__all__ = ["NfsVolume"]
