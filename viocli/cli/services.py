"""``viocli services start|stop|restart``: OpenStack services only; the VMs stay up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, deployment_name, requires_root, verbosity

role_option = click.option(
    "-r",
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["controller", "database", "loadbalancer", "compute"]),
    help="Only nodes of this role (repeatable).",
)
node_option = click.option(
    "-n", "--node", "nodes", multiple=True, help="Only this node, e.g. controller01 (repeatable or comma-separated)."
)
service_option = click.option(
    "-s",
    "--service",
    "service_names",
    multiple=True,
    help="Only this service, e.g. rabbitmq, nova, nova_compute (repeatable or comma-separated).",
)


def _selection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    return role_option(node_option(service_option(f)))


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def services() -> None:
    """Start, stop or restart OpenStack services on the nodes (the VMs stay powered on).

    With no option every service on every node; --role and --node limit the nodes (together: either),
    --service the services. A combination that selects nothing is refused (exit 2).
    """


def _run(action: str, roles: tuple[str, ...], nodes: tuple[str, ...], service_names: tuple[str, ...]) -> None:
    from viocli.ops.lifecycle import services as run_services
    from viocli.settings import load_settings

    result = run_services(
        load_settings(),
        deployment_name(),
        action,
        roles=roles,
        nodes=nodes,
        services=service_names,
        say=lambda text: click.echo(f"viocli: {text}", err=True),
        verbosity=verbosity(),
    )
    click.echo(
        f"services {action}: {result.selection.describe()}, {result.run.changed} changes in {result.run.elapsed:.0f} s"
    )


@services.command(context_settings=CONTEXT_SETTINGS)
@_selection_options
@common_options
@requires_root
def start(roles: tuple[str, ...], nodes: tuple[str, ...], service_names: tuple[str, ...]) -> None:
    """Start the services that do not run (Galera from its most advanced member)."""
    _run("start", roles, nodes, service_names)


@services.command(context_settings=CONTEXT_SETTINGS)
@_selection_options
@common_options
@requires_root
def stop(roles: tuple[str, ...], nodes: tuple[str, ...], service_names: tuple[str, ...]) -> None:
    """Stop the services (Galera last, one member at a time)."""
    _run("stop", roles, nodes, service_names)


@services.command(context_settings=CONTEXT_SETTINGS)
@_selection_options
@common_options
@requires_root
def restart(roles: tuple[str, ...], nodes: tuple[str, ...], service_names: tuple[str, ...]) -> None:
    """Restart the services without an outage: clustered ones and controllers one node at a time."""
    _run("restart", roles, nodes, service_names)
