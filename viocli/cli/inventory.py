"""``viocli inventory validate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, format_option


@click.group(context_settings=CONTEXT_SETTINGS)
def inventory() -> None:
    """Check an inventory file."""


@inventory.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "-i",
    "--inventory",
    "inventory_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory file to check.",
)
@format_option
@common_options
def validate(inventory_path: Path, output_format: str) -> None:
    """Check an inventory and its custom.yml: syntax, keys, types, addresses, counts.

    Every problem is reported at once with file:line:column. Exit 0 when valid (warnings allowed),
    2 otherwise. Nothing is written anywhere.
    """
    from viocli.cli.output import print_json
    from viocli.inventory.load import load_inventory
    from viocli.inventory.problems import InvalidInventory
    from viocli.inventory.topology import allocate, resolve_nodes

    try:
        loaded = load_inventory(inventory_path)
    except InvalidInventory as error:
        if output_format == "json":
            print_json({"file": str(inventory_path), "valid": False, "problems": [_problem(p) for p in error.problems]})
            sys.exit(error.exit_code)
        raise
    nodes = resolve_nodes(loaded.model, allocate(loaded.model))
    if output_format == "json":
        print_json(
            {
                "file": str(inventory_path),
                "valid": True,
                "name": loaded.name,
                "mode": loaded.model.mode,
                "nodes": len(nodes),
                "problems": [_problem(p) for p in loaded.warnings],
            }
        )
        return
    for warning in loaded.warnings:
        click.echo(str(warning), err=True)
    count = len(loaded.warnings)
    click.echo(
        f"{inventory_path}: valid: deployment {loaded.name}, {loaded.model.mode} mode, "
        f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}"
        + (f", {count} warning{'s' if count != 1 else ''}" if count else "")
    )


def _problem(problem) -> dict:
    return {
        "file": str(problem.file),
        "line": problem.line,
        "column": problem.column,
        "severity": problem.severity,
        "key": ".".join(str(p) for p in problem.path),
        "message": problem.message,
    }
