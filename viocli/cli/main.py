"""The ``viocli`` entry point and the top of the command tree."""

from __future__ import annotations

import click

from viocli import __version__
from viocli.cli.common import CONTEXT_SETTINGS, common_options
from viocli.cli.lazy import LazyGroup

# name -> (module:attribute, one-line help). Importing a module here would slow every start-up.
COMMANDS: dict[str, tuple[str, str]] = {
    "deployment": ("viocli.cli.deployment:deployment", "Create, configure, start, stop and inspect a deployment."),
    "services": ("viocli.cli.services:services", "Start, stop or restart OpenStack services on the nodes."),
    "show": ("viocli.cli.show:show", "List the deployment's nodes; -p prints the resolved Ansible inventory."),
    "inventory": ("viocli.cli.inventory:inventory", "Check an inventory file."),
    "backup": ("viocli.cli.backup:backup", "Back up the OMS or the OpenStack database to NFS."),
    "restore": ("viocli.cli.restore:restore", "Restore the OMS or the OpenStack database from an NFS backup."),
    "recover": ("viocli.cli.recover:recover", "Rebuild broken or missing nodes by name or by role."),
    "patch": ("viocli.cli.patch:patch", "Add, list, install and uninstall patches."),
    "lab": ("viocli.cli.lab:lab", "Run the all-in-one lab: a simulated vCenter, VM nodes and NFS."),
    "secrets": ("viocli.cli.secrets:secrets", "Show, set, list or rotate the deployment's secrets (root only)."),
    "completion": ("viocli.cli.completion:completion", "Print the shell completion script for bash, zsh or fish."),
}


@click.group(
    name="viocli",
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings=CONTEXT_SETTINGS,
    help="viocli: lifecycle manager for OpenStack control planes on vSphere.\n\n"
    "Commands that change anything need root: run them with sudo.",
)
@click.version_option(__version__, "--version", prog_name="viocli")
@common_options
def cli() -> None:
    """Root group; global options are stored on the context by common_options."""


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="viocli")
