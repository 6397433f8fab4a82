"""``viocli deployment ...``: the lifecycle of a whole deployment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from viocli.cli.common import (
    CONTEXT_SETTINGS,
    common_options,
    deployment_name,
    format_option,
    inventory_option,
    requires_root,
    verbosity,
)

if TYPE_CHECKING:
    from viocli.ops.destroy import DestroyResult
    from viocli.ops.status import StatusReport
    from viocli.settings import Settings

tags_option = click.option(
    "-t", "--tags", multiple=True, help="Only run tasks with these tags (comma-separated or repeated)."
)
skip_tags_option = click.option("--skip-tags", multiple=True, help="Skip tasks with these tags.")
limit_option = click.option(
    "-l", "--limit", multiple=True, help="Only these nodes or roles (e.g. controller01, database)."
)
extra_vars_option = click.option(
    "-e",
    "--extra-vars",
    "extra_vars",
    multiple=True,
    metavar="KEY=VALUE|@FILE",
    help="Override a variable for this run only (beats custom.yml). Never put secrets here.",
)
yes_option = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
PEM_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.group(context_settings=CONTEXT_SETTINGS)
@common_options
def deployment() -> None:
    """Create, configure, start, stop and inspect a deployment."""


@deployment.command(context_settings=CONTEXT_SETTINGS)
@inventory_option
@yes_option
@extra_vars_option
@common_options
@requires_root
def create(inventory_path: Path | None, yes: bool, extra_vars: tuple[str, ...]) -> None:
    """Provision the VMs on vSphere and deploy the control plane (resumable)."""
    from viocli.errors import BadInput
    from viocli.ops.ansible import parse_cli_vars
    from viocli.ops.deploy import create as create_deployment
    from viocli.ops.tls import client_ca_file
    from viocli.settings import load_settings

    if inventory_path is None:
        raise BadInput("deployment create needs the inventory file", hint="sudo viocli deployment create -i FILE")
    settings = load_settings()

    def confirm(lines: list[str]) -> bool:
        for line in lines:
            click.echo(line)
        return yes or click.confirm("create (or complete) this deployment?", default=False, err=True)

    result = create_deployment(
        settings,
        inventory_path,
        confirm=confirm,
        say=lambda text: click.echo(f"viocli: {text}", err=True),
        cli_vars=parse_cli_vars(extra_vars),
        verbosity=verbosity(),
    )
    model = result.deployment.loaded.model
    click.echo(
        f"deployment {result.deployment.name} is running: {len(result.deployment.nodes)} VMs "
        f"({len(result.provisioned.created)} created), {result.configured.changed} changes, "
        f"configured in {result.configured.elapsed:.0f} s"
    )
    click.echo(f"  identity endpoint: https://{model.vips.external_fqdn or model.vips.external}:5000/v3")
    ca_file = client_ca_file(model, settings.deployment_dir(result.deployment.name))
    if ca_file is not None:
        click.echo(f"  CA certificate:    {ca_file}")


@deployment.command(context_settings=CONTEXT_SETTINGS)
@inventory_option
@tags_option
@skip_tags_option
@limit_option
@extra_vars_option
@click.option("-C", "--check", is_flag=True, help="Dry run: report what would change, change nothing.")
@click.option("-D", "--diff", is_flag=True, help="Show the differences in rendered files.")
@common_options
@requires_root
def configure(
    inventory_path: Path | None,
    tags: tuple[str, ...],
    skip_tags: tuple[str, ...],
    limit: tuple[str, ...],
    extra_vars: tuple[str, ...],
    check: bool,
    diff: bool,
) -> None:
    """Re-apply the inventory and custom.yml to the running deployment."""
    from viocli.ops.ansible import parse_cli_vars
    from viocli.ops.configure import configure as configure_deployment
    from viocli.settings import load_settings

    result = configure_deployment(
        load_settings(),
        inventory_path,
        deployment_name(),
        tags=tags,
        skip_tags=skip_tags,
        limit=limit,
        check=check,
        diff=diff,
        cli_vars=parse_cli_vars(extra_vars),
        verbosity=verbosity(),
    )
    verb = "would change" if check else "changed"
    click.echo(
        f"configure {verb} {result.changed} things on {len(result.hosts('processed'))} nodes in {result.elapsed:.0f} s"
    )


@deployment.command(context_settings=CONTEXT_SETTINGS)
@common_options
@requires_root
def start() -> None:
    """Power on the VMs and start every service (Galera from the most advanced node), then check health.

    Prints the health table of `deployment status` at the end; exit 1 if a check reports FAILURE.
    Resumable: run it again after a failure.
    """
    from viocli.ops.lifecycle import start as start_deployment
    from viocli.settings import load_settings

    start_deployment(
        load_settings(),
        deployment_name(),
        say=lambda text: click.echo(f"viocli: {text}", err=True),
        show_status=_print_status_table,
        verbosity=verbosity(),
    )


@deployment.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Do not ask; stop the services on the nodes whose VMs are on even "
    "when others are off already, then power them off.",
)
@common_options
@requires_root
def stop(force: bool) -> None:
    """Stop every service (Galera last), then power off the VMs (asks unless --force).

    No VM is powered off when a service did not stop cleanly. Resumable: run it again after a failure.
    """
    from viocli.ops.lifecycle import stop as stop_deployment
    from viocli.settings import load_settings

    def confirm(lines: list[str]) -> bool:
        for line in lines:
            click.echo(line)
        return force or click.confirm("stop this deployment and power off its VMs?", default=False, err=True)

    result = stop_deployment(
        load_settings(),
        deployment_name(),
        confirm=confirm,
        say=lambda text: click.echo(f"viocli: {text}", err=True),
        force=force,
        verbosity=verbosity(),
    )
    if result.already_stopped:
        click.echo(f"deployment {result.deployment} is already stopped: all {result.nodes} VMs are powered off")
        return
    stopped = "services stopped, " if result.stopped is not None else ""
    left = f"; left as they were: {', '.join(result.left_off)}" if result.left_off else ""
    click.echo(f"deployment {result.deployment} is stopped: {stopped}{len(result.powered_off)} VMs powered off{left}")


@deployment.command(context_settings=CONTEXT_SETTINGS)
@format_option
@common_options
def status(output_format: str) -> None:
    """Health of every node and service, every check at once (collector_name / overall_status in JSON).

    Read-only, for any user; checks needing root's secrets or SSH key say so (WARNING). Exit 0 when
    no check is FAILURE, 1 otherwise.
    """
    from viocli.cli.output import print_json
    from viocli.errors import OperationFailed
    from viocli.logsetup import setup_logging
    from viocli.ops.status import deployment_status
    from viocli.settings import load_settings

    settings = load_settings()
    setup_logging(settings.log_file)  # root only; other users simply do not log
    report = deployment_status(settings, deployment_name())
    if output_format == "json":
        print_json([_printable(r.to_dict()) for r in report.results])
    else:
        _print_status_table(report)
    if report.failed:
        raise OperationFailed(
            f"deployment {report.deployment} is not healthy: "
            f"{', '.join(r.collector_name for r in report.failed)} report FAILURE",
            hint="run the action of each FAILURE (--format json adds each check's details)",
        )


def _printable(value: Any) -> Any:
    """Secrets masked and control characters escaped in every string (messages quote remote output)."""
    from viocli.logsetup import escape_controls, redact_text

    if isinstance(value, str):
        return escape_controls(redact_text(value))
    if isinstance(value, list):
        return [_printable(v) for v in value]
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    return value


STATUS_STYLES = {"SUCCESS": "green", "WARNING": "yellow", "FAILURE": "bold red"}


def _print_status_table(report: StatusReport) -> None:
    """One row per collector (name, coloured status, nodes, message, action), then a summary line."""
    import sys

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=False)
    table = Table(show_lines=True)
    for header in ("collector", "status", "nodes", "message", "action"):
        table.add_column(header, overflow="fold")
    for result in report.results:
        row = _printable(result.to_dict())
        table.add_row(
            Text(row["collector_name"]),
            Text(row["overall_status"], style=STATUS_STYLES[row["overall_status"]]),
            Text(", ".join(row["nodes"])),
            Text(row["message"]),
            Text(row["action"]),
        )
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    console.print(Text(f"deployment {report.deployment}: {counts} ({report.elapsed_s:.1f} s)"))


@deployment.command(context_settings=CONTEXT_SETTINGS)
@click.option("--since", default=None, help="Only logs written since: a duration (30m, 2h, 3d) or a UTC date/time.")
@click.option("--recent-logs", is_flag=True, help="Only the current log files, not the rotated ones.")
@click.option("-n", "--node", "nodes", multiple=True, help="Collect from this node (repeatable; comma lists too).")
@click.option(
    "-r", "--role", "roles", multiple=True, help="Collect from this role's nodes: DB, Controller, LoadBalancer, ..."
)
@click.option(
    "--non-node-logs", is_flag=True, help="Collect the OMS's part (viocli, runs, state, vCenter); alone: only that."
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write the bundle to (default: the current one).",
)
@click.option("--nfs", "nfs_volume", default=None, help="Write the bundle straight to this NFS export (HOST:/PATH).")
@common_options
@requires_root
def getlogs(
    since: str | None,
    recent_logs: bool,
    nodes: tuple[str, ...],
    roles: tuple[str, ...],
    non_node_logs: bool,
    output: Path | None,
    nfs_volume: str | None,
) -> None:
    """Collect logs, configuration and diagnostics from every node at once and from the OMS into one
    bundle, every secret removed; prints its path, size and what came from each node.

    A node that is down is listed in the bundle's manifest and the summary; exit 1 only when nothing
    came from a node vCenter says is powered on.
    """
    from viocli.cli.backup import _say
    from viocli.cli.output import print_table
    from viocli.ops.getlogs import getlogs as collect_logs
    from viocli.ops.getlogs import raise_if_failed
    from viocli.settings import load_settings

    def split(values: tuple[str, ...]) -> list[str]:
        return [v.strip() for value in values for v in value.split(",") if v.strip()]

    result = collect_logs(
        load_settings(),
        deployment_name(),
        nodes=split(nodes),
        roles=split(roles),
        non_node_logs=non_node_logs,
        since=since,
        recent_logs=recent_logs,
        output=output,
        nfs_volume=nfs_volume,
        say=_say,
    )
    click.echo(f"bundle: {result.location}")
    click.echo(f"size:   {result.size / 1024 / 1024:.1f} MiB, in {result.seconds:.1f} s")
    rows = [
        (n.node, n.role, n.status, n.files, f"{n.bytes / 1024 / 1024:.1f} MiB", "; ".join(n.problems[:2]))
        for n in result.nodes
    ]
    if result.oms:
        rows.append(("oms", "OMS", "collected", result.oms_files, f"{result.oms_bytes / 1024 / 1024:.1f} MiB", ""))
    print_table(["node", "role", "status", "files", "size", "problems"], rows)
    raise_if_failed(result)


@deployment.command(context_settings=CONTEXT_SETTINGS)
@click.option("-y", "--yes", "-f", "--force", "yes", is_flag=True, help="Do not ask for the deployment's name.")
@common_options
@requires_root
def destroy(yes: bool) -> None:
    """Delete the deployment's VMs, DRS rules and VM folder, then its state on the OMS (secrets included).

    Shows what goes and asks to type the deployment's name (unless --yes). Backups on NFS stay; back
    up the OMS first (backup mgmt_server) to keep the secrets. Resumable: run it again after a failure.
    """
    from viocli.ops.destroy import destroy as destroy_deployment
    from viocli.settings import load_settings

    def confirm(lines: list[str], name: str) -> str:
        for line in lines:
            click.echo(line)
        if yes:
            return name
        try:
            return click.prompt(
                f"type the deployment's name ({name}) to destroy it", default="", show_default=False, err=True
            )
        except click.Abort:  # end of input or Ctrl-C: cancelled like a wrong name
            return ""

    settings = load_settings()
    result = destroy_deployment(
        settings, deployment_name(), confirm=confirm, say=lambda text: click.echo(f"viocli: {text}", err=True)
    )
    for line in _destroyed_lines(result):
        click.echo(line)
    if settings.default_deployment == result.deployment:
        click.echo(
            f"  note: the default deployment ({settings.default_deployment_source}) is still {result.deployment}; "
            "set another: sudo viocli deployment default NAME"
        )


def _destroyed_lines(result: DestroyResult) -> list[str]:
    """What ``deployment destroy`` deleted, a line per kind of thing."""
    lines = [f"deployment {result.deployment} destroyed"]
    remains, removed = result.remains, result.removed
    if remains is not None and removed is not None:
        lines.append(f"  VMs deleted: {', '.join(removed.vms) or 'none'}")
        if remains.gone:
            lines.append(f"  VMs already gone: {', '.join(v.vm_name for v in remains.gone)}")
        if remains.strangers:
            lines.append(f"  VMs left alone (not the deployment's): {', '.join(v.vm_name for v in remains.strangers)}")
        lines.append(f"  DRS rules deleted: {', '.join(removed.rules) or 'none'}")
        if removed.folder is not None:
            lines.append(f"  VM folder deleted: {removed.folder}")
        elif removed.kept:
            lines.append(f"  VM folder kept: {remains.folder_name} (it holds {', '.join(removed.kept)})")
        else:
            lines.append(f"  VM folder: {remains.folder_name} was already gone")
    forgotten = result.forgotten
    rows = ", ".join(f"{table} {count}" for table, count in forgotten.rows.items())
    lines.append(f"  state store rows deleted: {rows}")
    if forgotten.directory is not None:
        lines.append(f"  directory deleted: {forgotten.directory}")
    kept = f"the inventory file {result.inventory_path} and " if result.inventory_path is not None else ""
    lines.append(f"  kept: {kept}every backup on NFS")
    return lines


@deployment.command(name="cert-req-create", context_settings=CONTEXT_SETTINGS)
@inventory_option
@click.option("--cn", metavar="FQDN", default=None, help="Common name (default: the external FQDN, else the VIP).")
@click.option("--san", "sans", multiple=True, metavar="NAME", help="Another DNS name or IP address to request.")
@click.option("--country", metavar="CC", default=None, help="Two-letter country code.")
@click.option("--state", metavar="STATE", default=None, help="State or province.")
@click.option("--locality", metavar="CITY", default=None, help="Locality (city).")
@click.option("--org", metavar="ORG", default=None, help="Organization.")
@click.option("--ou", metavar="UNIT", default=None, help="Organizational unit.")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the CSR here."
)
@common_options
@requires_root
def cert_req_create(
    inventory_path: Path | None,
    cn: str | None,
    sans: tuple[str, ...],
    country: str | None,
    state: str | None,
    locality: str | None,
    org: str | None,
    ou: str | None,
    out: Path | None,
) -> None:
    """Create a private key and a certificate signing request for the external VIP and FQDN."""
    from viocli.certificates import SubjectFields
    from viocli.ops.certs import cert_req_create as create_request
    from viocli.settings import load_settings

    fields = (cn, country, state, locality, org, ou)
    subject = None
    if any(fields):
        subject = SubjectFields(cn or "", country, state, locality, org, ou)
    result = create_request(load_settings(), inventory_path, deployment_name(), subject, sans, out)
    click.echo(f"certificate signing request for {result.deployment}: {result.out_path or result.csr_path}")
    for line in result.lines:
        click.echo(f"  {line}")
    click.echo(f"  private key (stays on this OMS until cert-update): {result.key_path}")
    if result.replaced_pending:
        click.echo(
            f"  earlier requests' keys are kept ({result.replaced_pending}): a certificate signed for one installs too"
        )
    click.echo(
        "next: have your CA sign it, then: sudo viocli deployment cert-update -p CERT_FILE [--chain FILE] --ca CA_FILE"
    )


@deployment.command(name="cert-update", context_settings=CONTEXT_SETTINGS)
@inventory_option
@click.option("-p", "--cert", type=PEM_FILE, default=None, help="The signed certificate (PEM; its chain may follow).")
@click.option("--chain", type=PEM_FILE, default=None, help="The intermediate CA certificates (PEM).")
@click.option("--ca", type=PEM_FILE, default=None, help="The root CA clients trust (default: the OMS's trust store).")
@click.option("--key", type=PEM_FILE, default=None, help="The private key (default: the matching pending key).")
@click.option("--force", is_flag=True, help="Install a certificate that expires within 30 days.")
@click.option("--self-signed", "self_signed", is_flag=True, help="Renew the deployment's own CA-signed certificate.")
@click.option("--days", type=int, default=None, help="With --self-signed: how long it is valid (default 825).")
@common_options
@requires_root
def cert_update(
    inventory_path: Path | None,
    cert: Path | None,
    chain: Path | None,
    ca: Path | None,
    key: Path | None,
    force: bool,
    self_signed: bool,
    days: int | None,
) -> None:
    """Check a certificate, then serve it on the load balancers one at a time, the standby first."""
    from viocli import pki
    from viocli.errors import BadInput
    from viocli.ops.certs import cert_update as update_certificate
    from viocli.settings import load_settings

    if days is not None and not self_signed:
        raise BadInput("--days goes with --self-signed (a CA-signed certificate's validity is the CA's choice)")
    result = update_certificate(
        load_settings(),
        inventory_path,
        deployment_name(),
        cert=cert,
        chain=chain,
        ca=ca,
        key=key,
        force=force,
        self_signed=self_signed,
        days=days or pki.CERT_DAYS,
        verbosity=verbosity(),
    )
    info = result.info
    for warning in result.warnings:
        click.echo(f"viocli: warning: {warning}", err=True)
    click.echo(f"the external VIP of {result.deployment} serves the new certificate on every load balancer")
    click.echo(f"  subject: {info.subject}")
    click.echo(f"  issuer:  {info.issuer}")
    click.echo(f"  expires: {info.not_after:%Y-%m-%d %H:%M} UTC ({info.days_left()} days)")
    click.echo(f"  names:   {', '.join(info.names)}")
    click.echo(f"  clients' CA file: {result.ca_file}")


@deployment.command(name="default", context_settings=CONTEXT_SETTINGS)
@click.argument("name", required=False)
def default(name: str | None) -> None:
    """Show the default deployment, or set it (root) in viocli.conf."""
    from viocli.settings import load_settings

    settings = load_settings()
    if name is None:
        click.echo(settings.default_deployment or "(none set)")
        return
    _set_default(settings, name)
    click.echo(f"default deployment: {name} ({settings.config_file})")


def _set_default(settings: Settings, name: str) -> None:
    """Write ``name`` as viocli.conf's default: root only, a valid name of a known deployment."""
    import configparser
    import os

    from viocli.errors import Refused
    from viocli.ops.context import require_known_deployment

    if os.geteuid() != 0:
        raise Refused("setting the default deployment must run as root", hint="sudo viocli deployment default NAME")
    require_known_deployment(settings, name)
    config_file = settings.config_file
    parser = configparser.ConfigParser()
    parser.read(config_file)
    parser["DEFAULT"]["deployment"] = name
    config_file.parent.mkdir(parents=True, exist_ok=True)
    with open(config_file, "w", encoding="utf-8") as handle:
        parser.write(handle)
