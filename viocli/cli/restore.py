"""``viocli restore {mgmt_server,openstack_db} BACKUP_NAME NFS_VOLUME``."""

from __future__ import annotations

from pathlib import Path

import click

from viocli.cli.backup import _say, passphrase_option, read_passphrase
from viocli.cli.common import CONTEXT_SETTINGS, common_options, deployment_name, requires_root, verbosity


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def restore() -> None:
    """Restore the OMS or the OpenStack database from an NFS backup."""


@restore.command(name="mgmt_server", context_settings=CONTEXT_SETTINGS)
@click.argument("backup_name")
@click.argument("nfs_volume", metavar="NFS_VOLUME")
@click.option("-f", "--force", is_flag=True, help="Replace the state of an OMS that already has deployments.")
@passphrase_option
@common_options
@requires_root
def mgmt_server(backup_name: str, nfs_volume: str, force: bool, passphrase_file: Path | None) -> None:
    """Restore the OMS from a vio_ms_* backup (on a new OMS, or one that lost its state)."""
    from viocli.ops.restore import restore_mgmt_server
    from viocli.settings import load_settings

    passphrase = read_passphrase(passphrase_file, confirm=False)
    result = restore_mgmt_server(load_settings(), backup_name, nfs_volume, passphrase, force=force, say=_say)
    aside = f"; the state it replaced is in {result.kept_aside}" if result.kept_aside else ""
    click.echo(
        f"OMS restored from {result.name}: {result.files} files, deployments "
        f"{', '.join(result.deployments) or 'none'}{aside}"
    )


@restore.command(name="openstack_db", context_settings=CONTEXT_SETTINGS)
@click.argument("backup_name")
@click.argument("nfs_volume", metavar="NFS_VOLUME", required=False)
@click.option("-f", "--force", "--yes", "force", is_flag=True, help="Do not ask for confirmation.")
@common_options
@requires_root
def openstack_db(backup_name: str, nfs_volume: str | None, force: bool) -> None:
    """Restore the OpenStack database from a vio_os_db_* backup (verified first; the APIs stop meanwhile)."""
    from viocli.ops.restore import restore_openstack_db
    from viocli.settings import load_settings

    def confirm(lines: list[str]) -> bool:
        for line in lines:
            click.echo(line)
        return force or click.confirm("restore this backup?", default=False, err=True)

    result = restore_openstack_db(
        load_settings(), deployment_name(), backup_name, nfs_volume, confirm=confirm, say=_say, verbosity=verbosity()
    )
    click.echo(
        f"restored {result.name} on {result.node}: {result.tables} tables match the backup's checksums; "
        f"unpacked in {result.unpack_seconds:.0f} s, OpenStack APIs down for {result.downtime_seconds:.0f} s"
    )
