"""``viocli show [-p]``: the deployment's nodes, or the resolved Ansible inventory."""

from __future__ import annotations

from pathlib import Path

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, deployment_name, format_option, inventory_option


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "-p",
    "--inventory-vars",
    "print_inventory",
    is_flag=True,
    help="Print the resolved Ansible inventory with its group vars (secrets masked).",
)
@inventory_option
@format_option
@common_options
def show(print_inventory: bool, inventory_path: Path | None, output_format: str) -> None:
    """List the deployment's nodes: hostname, role, VM name and IP.

    Works for any user; only root sees anything that is secret, and even root sees it masked here.
    """
    import yaml

    from viocli.cli.output import print_json, print_table
    from viocli.inventory.render import ansible_inventory
    from viocli.ops.context import resolve_deployment
    from viocli.settings import load_settings
    from viocli.state.store import StateStore

    settings = load_settings()
    store = StateStore.open_readonly(settings.db_path)
    deployment = resolve_deployment(settings, store, inventory_path, deployment_name())
    if print_inventory:
        rendered = ansible_inventory(deployment.loaded.model, deployment.nodes, mask_secrets=True)
        if output_format == "json":
            print_json(rendered)
        else:
            click.echo(yaml.safe_dump(rendered, default_flow_style=False, sort_keys=False), nl=False)
        return
    records = {r.name: r for r in store.nodes(deployment.name)} if store else {}
    nodes = sorted(deployment.nodes, key=lambda n: n.name)
    if output_format == "json":
        print_json(
            [
                {
                    "hostname": n.name,
                    "role": n.role_label,
                    "vm_name": n.vm_name,
                    "ip": str(n.mgmt_ip),
                    "api_ip": str(n.api_ip) if n.api_ip else None,
                    "vm_id": records[n.name].vm_id if n.name in records else None,
                    "status": records[n.name].status if n.name in records else "planned",
                    "datastore": n.datastore,
                    "vcpus": n.vcpus,
                    "memory_mb": n.memory_mb,
                    "disk_gb": n.disk_gb,
                }
                for n in nodes
            ]
        )
        return
    print_table(["hostname", "role", "vm name", "ip"], [(n.name, n.role_label, n.vm_name, n.mgmt_ip) for n in nodes])
