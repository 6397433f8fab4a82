"""``viocli recover -n NODE... | -r ROLE... [-dn BACKUP_NAME -nfs NFS_VOLUME]`` (VIO's flags kept)."""

from __future__ import annotations

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, not_landed, requires_root


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("-n", "--node", "nodes", multiple=True, help="Node to rebuild (repeatable), e.g. controller01.")
@click.option(
    "-r",
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["controller", "database", "loadbalancer", "compute", "DB"]),
    help="Rebuild every node of this role (repeatable).",
)
@click.option("-dn", "--dir-name", "backup_name", default=None, help="Database backup to restore (database role).")
@click.option("-nfs", "--nfs", "nfs_volume", default=None, help="NFS volume holding that backup.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@common_options
@not_landed("node recovery")
@requires_root
def recover(
    nodes: tuple[str, ...], roles: tuple[str, ...], backup_name: str | None, nfs_volume: str | None, force: bool
) -> None:
    """Rebuild broken or missing nodes by name or by role; they keep their names and IPs."""
