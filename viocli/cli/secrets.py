"""``viocli secrets show|set|list|encrypt|rotate``: root only; values never travel on argv."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from viocli.cli.common import (
    CONTEXT_SETTINGS,
    common_options,
    deployment_name,
    inventory_option,
    requires_root,
    verbosity,
)


def _store_for(inventory_path: Path | None, unknown_hint: str | None = None):
    """The secrets store of the deployment named by -i, -d or the default, and that name."""
    from viocli.ops.context import target_name
    from viocli.secrets.store import SecretStore
    from viocli.settings import load_settings

    settings = load_settings()
    name = target_name(settings, inventory_path, deployment_name(), unknown_hint=unknown_hint)
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
@common_options
def secrets() -> None:
    """Show, set, list or rotate the deployment's secrets (root only)."""


@secrets.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@inventory_option
@common_options
@requires_root
def show(name: str, inventory_path: Path | None) -> None:
    """Print one secret's value (the only place viocli ever prints a secret); generates nothing."""
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

    For example the vCenter password, before the deployment exists:
    sudo viocli secrets set vcenter_password -i FILE
    """
    from viocli.errors import BadInput

    _check_name(name)
    before = f"before its deployment exists, store a secret with its inventory: sudo viocli secrets set {name} -i FILE"
    store, deployment = _store_for(inventory_path, unknown_hint=before)
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
    """List the names of the deployment's secrets (never their values); creates nothing."""
    from viocli.cli.output import print_table
    from viocli.secrets.catalog import GENERATED, ROTATABLE

    store, _ = _store_for(inventory_path)
    data = store.load()
    rows = [
        (
            name,
            "generated" if name in GENERATED else "operator",
            "set" if name in data else "not yet",
            "yes" if name in ROTATABLE else "no",
        )
        for name in sorted({*GENERATED, *data})
    ]
    print_table(["name", "source", "state", "rotate"], rows)


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


@secrets.command(context_settings=CONTEXT_SETTINGS)
@click.argument("names", nargs=-1, metavar="NAME...")
@click.option("--all-services", is_flag=True, help="Every service account's password (database, RabbitMQ, Keystone).")
@inventory_option
@common_options
@requires_root
def rotate(names: tuple[str, ...], all_services: bool, inventory_path: Path | None) -> None:
    """Replace secrets with new random values and push them to every consumer.

    MariaDB, RabbitMQ and Keystone users and the config files that hold them get the new values;
    only the services that read them restart. `secrets list` shows which secrets rotate.
    """
    from viocli.ops.rotate import rotate_secrets
    from viocli.settings import load_settings

    result = rotate_secrets(
        load_settings(), inventory_path, deployment_name(), names, all_services=all_services, verbosity=verbosity()
    )
    click.echo(
        f"rotated {len(result.rotated)} secret{'s' if len(result.rotated) != 1 else ''} of {result.deployment}: "
        f"{', '.join(result.rotated)}; pushed with {result.configured.changed} changes "
        f"in {result.configured.elapsed:.0f} s"
    )
