"""``viocli patch add|list|install|uninstall`` (VIO's viopatch)."""

from __future__ import annotations

from pathlib import Path

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, format_option, not_landed, requires_root


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
@common_options
@not_landed("patching")
@requires_root
def add(location: Path) -> None:
    """Add a patch file to the OMS's patch repository."""


@patch.command(name="list", context_settings=CONTEXT_SETTINGS)
@format_option
@common_options
@not_landed("patching")
def list_patches(output_format: str) -> None:
    """List added patches: Name, Version, Type, Installed."""


@patch.command(context_settings=CONTEXT_SETTINGS)
@click.option("-p", "--patch", "name", required=True, help="Patch name.")
@click.option("-v", "--version", "version", required=True, help="Patch version.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@common_options(verbose=False)
@not_landed("patching")
@requires_root
def install(name: str, version: str, force: bool) -> None:
    """Install an added patch (the deployment must be running)."""


@patch.command(context_settings=CONTEXT_SETTINGS)
@click.option("-p", "--patch", "name", required=True, help="Patch name.")
@click.option("-v", "--version", "version", required=True, help="Patch version.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@common_options(verbose=False)
@not_landed("patching")
@requires_root
def uninstall(name: str, version: str, force: bool) -> None:
    """Roll back an installed patch."""
