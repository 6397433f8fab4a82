"""``viocli restore {mgmt_server,openstack_db} BACKUP_NAME NFS_VOLUME``."""

from __future__ import annotations

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, not_landed, requires_root


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def restore() -> None:
    """Restore the OMS or the OpenStack database from an NFS backup."""


@restore.command(name="mgmt_server", context_settings=CONTEXT_SETTINGS)
@click.argument("backup_name")
@click.argument("nfs_volume", metavar="NFS_VOLUME")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@common_options
@not_landed("NFS backup and restore")
@requires_root
def mgmt_server(backup_name: str, nfs_volume: str, force: bool) -> None:
    """Restore the OMS from a vio_ms_* backup."""


@restore.command(name="openstack_db", context_settings=CONTEXT_SETTINGS)
@click.argument("backup_name")
@click.argument("nfs_volume", metavar="NFS_VOLUME")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@common_options
@not_landed("NFS backup and restore")
@requires_root
def openstack_db(backup_name: str, nfs_volume: str, force: bool) -> None:
    """Restore the OpenStack database from a vio_os_db_* backup."""
