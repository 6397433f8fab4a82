"""``viocli services start|stop|restart``: OpenStack services only; the VMs stay up."""

from __future__ import annotations

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, not_landed, requires_root

role_option = click.option(
    "-r",
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["controller", "database", "loadbalancer", "compute"]),
    help="Only nodes of this role.",
)
node_option = click.option("-n", "--node", "nodes", multiple=True, help="Only this node (e.g. controller01).")


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def services() -> None:
    """Start, stop or restart OpenStack services on the nodes."""


@services.command(context_settings=CONTEXT_SETTINGS)
@role_option
@node_option
@common_options
@not_landed("the lifecycle playbooks")
@requires_root
def start(roles: tuple[str, ...], nodes: tuple[str, ...]) -> None:
    """Start the services."""


@services.command(context_settings=CONTEXT_SETTINGS)
@role_option
@node_option
@common_options
@not_landed("the lifecycle playbooks")
@requires_root
def stop(roles: tuple[str, ...], nodes: tuple[str, ...]) -> None:
    """Stop the services."""


@services.command(context_settings=CONTEXT_SETTINGS)
@role_option
@node_option
@common_options
@not_landed("the lifecycle playbooks")
@requires_root
def restart(roles: tuple[str, ...], nodes: tuple[str, ...]) -> None:
    """Restart the services, one node of a role at a time."""
