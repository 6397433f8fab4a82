"""``viocli backup {mgmt_server,openstack_db} NFS_VOLUME``, ``backup list``, ``backup verify``."""

from __future__ import annotations

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, format_option, not_landed, requires_root


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def backup() -> None:
    """Back up the OMS or the OpenStack database to NFS."""


@backup.command(name="mgmt_server", context_settings=CONTEXT_SETTINGS)
@click.argument("nfs_volume", metavar="NFS_VOLUME", required=False)
@common_options
@not_landed("NFS backup and restore")
@requires_root
def mgmt_server(nfs_volume: str | None) -> None:
    """Back up the OMS (state, secrets, keys, inventories) as vio_ms_YYYYmmddHHMMSS."""


@backup.command(name="openstack_db", context_settings=CONTEXT_SETTINGS)
@click.argument("nfs_volume", metavar="NFS_VOLUME", required=False)
@common_options
@not_landed("NFS backup and restore")
@requires_root
def openstack_db(nfs_volume: str | None) -> None:
    """Stream the OpenStack database to NFS as vio_os_db_YYYYmmddHHMMSS."""


@backup.command(name="list", context_settings=CONTEXT_SETTINGS)
@format_option
@common_options
@not_landed("NFS backup and restore")
def list_backups(output_format: str) -> None:
    """List the deployment's backups and their state."""


@backup.command(context_settings=CONTEXT_SETTINGS)
@click.argument("backup_name")
@click.argument("nfs_volume", metavar="NFS_VOLUME", required=False)
@common_options
@not_landed("NFS backup and restore")
@requires_root
def verify(backup_name: str, nfs_volume: str | None) -> None:
    """Check a backup on NFS against its recorded checksums."""
