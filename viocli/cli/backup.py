"""``viocli backup {mgmt_server,openstack_db} [NFS_VOLUME]``, ``backup list``, ``backup verify``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, deployment_name, format_option, requires_root

NFS_HELP = "host:/export (or an absolute directory); default: the inventory's backup.nfs"


def human_size(size: int | None) -> str:
    """``1.5 GB`` style sizes (powers of 1000, as df -H)."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def read_passphrase(passphrase_file: Path | None, *, confirm: bool) -> str:
    """The passphrase from ``--passphrase-file`` (its first line) or the terminal, never from argv."""
    from viocli.errors import BadInput

    if passphrase_file is not None:
        try:
            text = passphrase_file.read_text(encoding="utf-8")
        except OSError as error:
            raise BadInput(f"--passphrase-file {passphrase_file}: {error.strerror or error}") from None
        passphrase = text.splitlines()[0] if text.strip() else ""
    elif sys.stdin.isatty():
        passphrase = click.prompt("passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    else:
        raise BadInput(
            "the OMS backup is encrypted with a passphrase: give it in a file with --passphrase-file FILE, "
            "or run this on a terminal to type it"
        )
    if len(passphrase) < 12:
        raise BadInput("the passphrase is too short: use at least 12 characters")
    return passphrase


def passphrase_option(f: Any) -> Any:
    return click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read the passphrase from the first line of this file (else it is asked on the terminal).",
    )(f)


def _say(text: str) -> None:
    click.echo(f"viocli: {text}", err=True)


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def backup() -> None:
    """Back up the OMS or the OpenStack database to NFS."""


@backup.command(name="mgmt_server", context_settings=CONTEXT_SETTINGS)
@click.argument("nfs_volume", metavar="NFS_VOLUME", required=False)
@passphrase_option
@common_options
@requires_root
def mgmt_server(nfs_volume: str | None, passphrase_file: Path | None) -> None:
    """Back up the OMS (state, secrets, PKI, SSH keys, inventories) as vio_ms_YYYYmmddHHMMSS (UTC),
    encrypted with a passphrase (age)."""
    from viocli.ops.backup import backup_mgmt_server
    from viocli.settings import load_settings

    passphrase = read_passphrase(passphrase_file, confirm=True)
    result = backup_mgmt_server(load_settings(), deployment_name(), nfs_volume, passphrase, say=_say)
    _done(result)


@backup.command(name="openstack_db", context_settings=CONTEXT_SETTINGS)
@click.argument("nfs_volume", metavar="NFS_VOLUME", required=False)
@common_options
@requires_root
def openstack_db(nfs_volume: str | None) -> None:
    """Stream a hot backup of every OpenStack database to NFS as vio_os_db_YYYYmmddHHMMSS (UTC).

    Taken on the least loaded Synced Galera member, held still (desynced) for the time of the backup
    while the others go on serving."""
    from viocli.ops.backup import backup_openstack_db
    from viocli.settings import load_settings

    _done(backup_openstack_db(load_settings(), deployment_name(), nfs_volume, say=_say))


def _done(result: Any) -> None:
    manifest = result.manifest
    raw = manifest.files[0].raw_size if manifest.files else None
    details = manifest.details
    where = f" on {details['member']} at Galera position {details['galera_position']}" if "member" in details else ""
    tables = f", {len(details['tables'])} tables checksummed" if "tables" in details else ""
    click.echo(
        f"backup {result.name} complete in {result.target}: {human_size(manifest.size)} "
        f"({human_size(raw)} before compression) in {manifest.duration_seconds:.1f} s{where}{tables}"
    )
    if result.removed:
        click.echo(f"retention removed: {', '.join(result.removed)}")


@backup.command(name="list", context_settings=CONTEXT_SETTINGS)
@click.argument("nfs_volume", metavar="NFS_VOLUME", required=False)
@format_option
@common_options
def list_backups(nfs_volume: str | None, output_format: str) -> None:
    """The backups in the catalog and, given NFS_VOLUME, on the export: name, kind, size, duration, state
    (complete, verified, failed, running, incomplete)."""
    from viocli.cli.output import print_json, print_table
    from viocli.ops.backup import list_backups as listed
    from viocli.settings import load_settings

    backups = listed(load_settings(), deployment_name(), nfs_volume)
    if output_format == "json":
        print_json([vars(b) for b in backups])
        return
    rows = [
        [
            b.name,
            b.kind,
            b.deployment,
            human_size(b.size_bytes),
            "-" if b.duration_seconds is None else f"{b.duration_seconds:.0f} s",
            b.state,
            b.where,
            b.message or "",
        ]
        for b in backups
    ]
    print_table(["name", "kind", "deployment", "size", "duration", "state", "where", "note"], rows)


@backup.command(context_settings=CONTEXT_SETTINGS)
@click.argument("backup_name")
@click.argument("nfs_volume", metavar="NFS_VOLUME", required=False)
@click.option(
    "--restore-test",
    is_flag=True,
    help="Also restore an openstack_db backup into a throwaway MariaDB on a database node and compare "
    "every table's checksum with the manifest (removed afterwards).",
)
@common_options
@requires_root
def verify(backup_name: str, nfs_volume: str | None, restore_test: bool) -> None:
    """Re-read every file of a backup against its manifest (size and SHA-256)."""
    from viocli.ops.backup import verify as verify_backup
    from viocli.settings import load_settings

    result = verify_backup(
        load_settings(), deployment_name(), backup_name, nfs_volume, restore_test=restore_test, say=_say
    )
    tested = ""
    if result.restore_test:
        tested = (
            f"; restore test on {result.restore_test['node']}: {result.restore_test['tables']} tables match "
            "the manifest's checksums"
        )
    click.echo(
        f"backup {result.name} verified: {result.files} files, {human_size(result.bytes_read)} "
        f"match the manifest{tested}"
    )
