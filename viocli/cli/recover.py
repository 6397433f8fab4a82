"""``viocli recover -n NODE... | -r ROLE... [-dn BACKUP_NAME -nfs NFS_VOLUME]`` (VIO's flags kept)."""

from __future__ import annotations

import click

from viocli.cli.backup import _say
from viocli.cli.common import CONTEXT_SETTINGS, common_options, deployment_name, requires_root, verbosity
from viocli.errors import BadInput


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-n", "--node", "nodes", multiple=True, help="Node to rebuild, as viocli show names it (repeatable).")
@click.option(
    "-r",
    "--role",
    "roles",
    multiple=True,
    help="Rebuild every node of this role: DB, Controller, LoadBalancer, ComputeDriver.",
)
@click.option("-dn", "--dir-name", "backup_name", default=None, help="openstack_db backup to restore (whole DB role).")
@click.option(
    "-nfs", "--nfs", "nfs_volume", default=None, help="NFS volume holding that backup (default: the inventory's)."
)
@click.option("-f", "--force", "--yes", "force", is_flag=True, help="Do not ask for confirmation.")
@click.argument("more", nargs=-1, metavar="[NAME ...]")
@common_options
@requires_root
def recover(
    nodes: tuple[str, ...],
    roles: tuple[str, ...],
    backup_name: str | None,
    nfs_volume: str | None,
    force: bool,
    more: tuple[str, ...],
) -> None:
    """Rebuild broken or missing nodes by name or by role; they come back as newly deployed, with their
    names and IPs. One or two lost database nodes rejoin from the others; the whole DB role needs a backup."""
    from viocli.ops.recover import recover as run_recover
    from viocli.settings import load_settings

    if more:  # VIO's `-n NODE [NODE ...]`: the names after the flag
        if nodes and roles:
            raise BadInput(
                "names after both -n and -r: give -n or -r before each name", hint="-n database02 -n database03"
            )
        if not nodes and not roles:
            raise BadInput(f"{' '.join(more)}: say whether these are nodes (-n) or roles (-r)")
        nodes, roles = (nodes + more, roles) if nodes else (nodes, roles + more)

    def confirm(lines: list[str]) -> bool:
        for line in lines:
            click.echo(line)
        return click.confirm("recover these nodes?", default=False, err=True)

    result = run_recover(
        load_settings(),
        deployment_name(),
        nodes=nodes,
        roles=roles,
        backup_name=backup_name,
        nfs_volume=nfs_volume,
        force=force,
        confirm=confirm,
        say=_say,
        verbosity=verbosity(),
    )
    for node in result.recovered:
        click.echo(f"{node.node}: recovered in {node.seconds:.0f} s ({node.reason})")
    if result.restored:
        click.echo(f"database restored from {result.restored}")
    click.echo(f"deployment {result.deployment} is healthy")
