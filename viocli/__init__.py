"""viocli: lifecycle manager for OpenStack control planes on vSphere."""

__version__ = "0.1.0"
