"""``viocli patch add|list|install|uninstall`` (VIO's viopatch)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, deployment_name, format_option, requires_root, verbosity


def _say(text: str) -> None:
    click.echo(f"viocli: {text}", err=True)


def _confirm(question: str) -> Callable[[list[str]], bool]:
    """A confirmation that prints the plan's lines, then asks ``question`` (default no)."""

    def confirm(lines: list[str]) -> bool:
        for line in lines:
            click.echo(line)
        return click.confirm(question, default=False, err=True)

    return confirm


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def patch() -> None:
    """Add, list, install and uninstall patches."""


@patch.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "-l",
    "--location",
    "location",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Patch file (NAME_VERSION_all.deb).",
)
@click.option("--allow-unsigned", is_flag=True, help="Accept a patch that carries no signature (refused by default).")
@common_options
@requires_root
def add(location: Path, allow_unsigned: bool) -> None:
    """Check a patch file (format, checksums, signature against /etc/viocli/trusted-keys) and add it to
    the OMS's patch store."""
    from viocli.ops.patch import add as add_patch
    from viocli.settings import load_settings

    result = add_patch(load_settings(), location, allow_unsigned=allow_unsigned)
    manifest = result.patch.manifest
    if result.already:
        click.echo(f"{location} patch is already added ({manifest.name} {manifest.version}).")
        return
    signed = f"signed by {result.patch.signed_by}" if result.patch.signed_by else "unsigned"
    click.echo(f"{location} patch has been added.")
    click.echo(
        f"  {manifest.name} {manifest.version} ({manifest.type}, {signed}) for {', '.join(manifest.roles)}: "
        f"{', '.join(f'{p.package} {p.version}' for p in manifest.packages)}"
    )
    click.echo(f"  stored as {result.stored}; install it with: sudo viocli patch install -p {manifest.name} "
               f"-v {manifest.version}")  # fmt: skip


@patch.command(name="list", context_settings=CONTEXT_SETTINGS)
@format_option
@common_options
def list_patches(output_format: str) -> None:
    """List added patches: Name, Version, Type, Installed (on the deployment), where and when."""
    from viocli.cli.output import print_json, print_table
    from viocli.ops.patch import list_patches as listed
    from viocli.settings import load_settings

    rows = listed(load_settings(), deployment_name())
    if output_format == "json":
        print_json([r.as_dict() for r in rows])
        return
    print_table(
        ["Name", "Version", "Type", "Installed", "Where", "When"],
        [[r.name, r.version, r.type, r.installed, r.where, r.when or "-"] for r in rows],
    )


@patch.command(context_settings=CONTEXT_SETTINGS)
@click.option("-p", "--patch", "name", required=True, help="Patch name.")
@click.option("-v", "--version", "version", required=True, help="Patch version.")
@click.option("-f", "--force", "--yes", "assume_yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--backup",
    "backup_volume",
    default=None,
    metavar="NFS_VOLUME",
    help="Take an openstack_db backup on this NFS volume first.",
)
@click.option("--skip-backup", is_flag=True, help="Go on without a recent openstack_db backup (refused by default).")
@click.option("--keep-snapshots", is_flag=True, help="Keep each VM's snapshot after a successful install.")
@common_options(verbose=False)
@requires_root
def install(
    name: str, version: str, assume_yes: bool, backup_volume: str | None, skip_backup: bool, keep_snapshots: bool
) -> None:
    """Install an added patch, one node at a time behind the load balancers; a node that fails its
    check puts every node touched back on its snapshot (the deployment must be running and healthy)."""
    from viocli.ops.patch import install as run_install
    from viocli.settings import load_settings

    click.echo(f"Installing patch {name} version {version}")
    result = run_install(
        load_settings(),
        name,
        version,
        deployment_name(),
        backup_volume=backup_volume,
        skip_backup=skip_backup,
        keep_snapshots=keep_snapshots,
        confirm=_confirm("install this patch?"),
        assume_yes=assume_yes,
        say=_say,
        verbosity=verbosity(),
    )
    if result.already:
        return
    for node in result.nodes:
        click.echo(f"{node.node}: patched in {node.seconds:.0f} s")
    click.echo(f"Installation complete for patch {name} version {version} on {result.deployment} "
               f"in {result.seconds:.0f} s")  # fmt: skip


@patch.command(context_settings=CONTEXT_SETTINGS)
@click.option("-p", "--patch", "name", required=True, help="Patch name.")
@click.option("-v", "--version", "version", required=True, help="Patch version.")
@click.option("-f", "--force", "--yes", "assume_yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--keep-snapshots", is_flag=True, help="Keep each VM's snapshot after a successful uninstall.")
@common_options(verbose=False)
@requires_root
def uninstall(name: str, version: str, assume_yes: bool, keep_snapshots: bool) -> None:
    """Put back the package versions from before the patch, one node at a time, as install does."""
    from viocli.ops.patch import uninstall as run_uninstall
    from viocli.settings import load_settings

    click.echo(f"Uninstalling patch {name} version {version}")
    result = run_uninstall(
        load_settings(),
        name,
        version,
        deployment_name(),
        keep_snapshots=keep_snapshots,
        confirm=_confirm("uninstall this patch?"),
        assume_yes=assume_yes,
        say=_say,
        verbosity=verbosity(),
    )
    for node in result.nodes:
        click.echo(f"{node.node}: back to the versions from before the patch in {node.seconds:.0f} s")
    click.echo(f"Uninstall complete for patch {name} version {version} on {result.deployment}")
