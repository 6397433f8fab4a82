"""``viocli secrets show|set|list|encrypt``: root only; values never travel on argv."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, deployment_name, inventory_option, requires_root


def _store_for(inventory_path: Path | None):
    from viocli.ops.context import deployment_name as resolve_name
    from viocli.secrets.store import SecretStore
    from viocli.settings import load_settings
    from viocli.state.store import StateStore

    settings = load_settings()
    if inventory_path is not None:
        from viocli.inventory.load import load_inventory

        name = load_inventory(inventory_path).name
    else:
        name = resolve_name(settings, deployment_name(), StateStore.open_readonly(settings.db_path))
    return SecretStore(settings.deployment_dir(name)), name


def _check_name(name: str) -> None:
    from viocli.errors import BadInput
    from viocli.secrets.catalog import secret_names

    known = secret_names()
    if name not in known and not name.endswith("_password"):
        close = difflib.get_close_matches(name, known, n=1)
        raise BadInput(
            f"no secret named {name!r}",
            hint=f"did you mean {close[0]}?" if close else "list them with: sudo viocli secrets list",
        )


@click.group(context_settings=CONTEXT_SETTINGS)
def secrets() -> None:
    """Show or set the deployment's secrets (root only)."""


@secrets.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@inventory_option
@common_options
@requires_root
def show(name: str, inventory_path: Path | None) -> None:
    """Print one secret's value (the only place viocli ever prints a secret)."""
    _check_name(name)
    store, deployment = _store_for(inventory_path)
    value = store.get(name)
    from viocli.logsetup import get_logger

    get_logger().info("secret %s of %s shown", name, deployment)
    if isinstance(value, list):
        sys.stdout.write("\n".join(str(v) for v in value) + "\n")
    else:
        sys.stdout.write(f"{value}\n")


@secrets.command(name="set", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@inventory_option
@common_options
@requires_root
def set_secret(name: str, inventory_path: Path | None) -> None:
    """Store a secret read from standard input or typed at a hidden prompt (never an argument).

    For example the vCenter password:  sudo viocli secrets set vcenter_password -d NAME
    """
    from viocli.errors import BadInput

    _check_name(name)
    store, deployment = _store_for(inventory_path)
    if sys.stdin.isatty():
        value = click.prompt(f"{name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise BadInput(f"empty value for {name}; nothing was stored")
    store.set(name, value)
    from viocli.logsetup import get_logger

    get_logger().info("secret %s of %s set", name, deployment)
    click.echo(f"{name} stored for deployment {deployment}")


@secrets.command(name="list", context_settings=CONTEXT_SETTINGS)
@inventory_option
@common_options
@requires_root
def list_secrets(inventory_path: Path | None) -> None:
    """List the names of the deployment's secrets (never their values)."""
    from viocli.cli.output import print_table
    from viocli.secrets.catalog import GENERATED

    store, _ = _store_for(inventory_path)
    data = store.load()
    rows = [
        (name, "generated" if name in GENERATED else "operator", "set" if name in data else "not yet")
        for name in sorted({*GENERATED, *data})
    ]
    print_table(["name", "source", "state"], rows)


@secrets.command(context_settings=CONTEXT_SETTINGS)
@inventory_option
@common_options
@requires_root
def encrypt(inventory_path: Path | None) -> None:
    """Encrypt the secrets file with Ansible Vault (a new 0400 vault password file beside it)."""
    store, deployment = _store_for(inventory_path)
    if store.encrypt():
        click.echo(f"secrets of {deployment} are now vault-encrypted; password file {store.vault_password_path}")
    else:
        click.echo(f"secrets of {deployment} were already vault-encrypted")
