"""``viocli lab up|down|status``: the all-in-one lab on this machine."""

from __future__ import annotations

import click

from viocli.cli.common import CONTEXT_SETTINGS, common_options, format_option, requires_root

LAB_INVENTORIES = ("inventory/lab-tiny.yml", "inventory/lab-ha.yml")


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def lab() -> None:
    """Run the all-in-one lab: a simulated vCenter, VM nodes and NFS."""


@lab.command(context_settings=CONTEXT_SETTINGS)
@common_options
@requires_root
def up() -> None:
    """Start the vCenter simulator, the node watcher and the NFS server (idempotent).

    The first run builds the template root filesystem (minutes; cached under /var/cache/viocli).
    """
    from viocli.lab.control import up as lab_up
    from viocli.lab.inventories import store_lab_secrets
    from viocli.settings import load_settings, share_dir

    settings = load_settings()
    state = lab_up(settings)
    store_lab_secrets(settings, state)
    click.echo(f"lab is up: vCenter {state.data['vcsim']['url']}, NFS {state.data['nfs']['export']}")
    click.echo("deploy with one of:")
    for inventory in LAB_INVENTORIES:
        click.echo(f"  sudo viocli deployment create -i {share_dir('inventory').parent / inventory}")


@lab.command(context_settings=CONTEXT_SETTINGS)
@common_options
@requires_root
def down() -> None:
    """Remove everything the lab created (processes, mounts, namespaces, bridges, files), nothing else."""
    from viocli.lab.control import down as lab_down
    from viocli.settings import load_settings

    removed = lab_down(load_settings())
    for item in removed:
        click.echo(f"removed {item}")
    click.echo("lab is down" if removed else "no lab was running")


@lab.command(context_settings=CONTEXT_SETTINGS)
@format_option
@common_options
def status(output_format: str) -> None:
    """List the simulator, the NFS export, the bridges and every node with its state and IP."""
    from viocli.cli.output import format_table, print_json
    from viocli.lab.control import status as lab_status
    from viocli.settings import load_settings

    report = lab_status(load_settings())
    if output_format == "json":
        print_json(report)
        return
    if not report["up"]:
        click.echo("the lab is not up (start it with: sudo viocli lab up)")
        return
    rows = [
        ("vCenter simulator", "running" if report["vcsim"]["running"] else "STOPPED", report["vcsim"].get("url", "-")),
        ("NFS server", "running" if report["nfs"]["running"] else "STOPPED", report["nfs"].get("export", "-")),
        (
            "node watcher",
            "running" if report["watcher"]["running"] else "STOPPED",
            f"pid {report['watcher'].get('pid')}",
        ),
    ]
    rows += [(f"bridge {b['name']}", "up" if b["up"] else "MISSING", f"{b['address']} ({b['network']})")
             for b in report["bridges"]]  # fmt: skip
    click.echo(format_table(["component", "state", "where"], rows))
    click.echo()
    nodes = [(n["hostname"], n["state"], ", ".join(n["ips"]), n["vm"]) for n in report["nodes"]]
    click.echo(format_table(["node", "state", "ip", "vm"], nodes) if nodes else "no nodes yet")
