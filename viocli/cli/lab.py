"""``viocli lab up|down|status``: the all-in-one lab on this machine."""

from __future__ import annotations

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, format_option, not_landed, requires_root


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def lab() -> None:
    """Run the all-in-one lab: a simulated vCenter, VM nodes and NFS."""


@lab.command(context_settings=CONTEXT_SETTINGS)
@common_options
@not_landed("the lab (simulated vCenter, nodes, NFS)")
@requires_root
def up() -> None:
    """Start the vCenter simulator, the node watcher and the NFS server (idempotent)."""


@lab.command(context_settings=CONTEXT_SETTINGS)
@common_options
@not_landed("the lab (simulated vCenter, nodes, NFS)")
@requires_root
def down() -> None:
    """Remove everything the lab created, and nothing else."""


@lab.command(context_settings=CONTEXT_SETTINGS)
@format_option
@common_options
@not_landed("the lab (simulated vCenter, nodes, NFS)")
def status(output_format: str) -> None:
    """List the simulator, the NFS export, the bridges and every node with its state and IP."""
