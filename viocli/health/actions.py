"""What the operator should run: the ``action`` of a result, written in one place.

Commands name the deployment (``-d``) so that they act on the one that was checked.
"""

from __future__ import annotations


def start_deployment(deployment: str) -> str:
    """Power on the VMs and start every service (Galera from the most advanced node)."""
    return f"sudo viocli deployment start -d {deployment}"


def service(verb: str, service_name: str, node: str, deployment: str) -> str:
    """Start, stop or restart one service on one node."""
    return f"sudo viocli services {verb} --service {service_name} --node {node} -d {deployment}"


def configure(deployment: str, tags: str) -> str:
    """Re-apply part of the configuration (and restart what reads it)."""
    return f"sudo viocli deployment configure --tags {tags} -d {deployment}"


def recover(node: str, deployment: str) -> str:
    """Rebuild a lost node."""
    return f"sudo viocli recover -n {node} -d {deployment}"


def run_as_root(what: str) -> str:
    """The action of a check this user may not run."""
    return f"sudo viocli deployment status (root can check {what})"
