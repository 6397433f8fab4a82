"""Collectors of the OpenStack APIs, seen as a client sees them: through the external VIP over TLS."""

from __future__ import annotations

from viocli.health import actions
from viocli.health.api import ApiError, Check
from viocli.health.context import StatusContext, Unavailable
from viocli.health.parallel import fan_out
from viocli.health.result import Finding, Result, Status, conclude, not_checked
from viocli.inventory.model import cluster_slug

APIS = "VerifyOpenStackAPIs"
NOVA_COMPUTE = "VerifyNovaComputeServices"

NOVA_API = "nova_api"  # the haproxy service whose external port is the compute API
COMPUTE_SERVICES_PATH = "/v2.1/os-services?binary=nova-compute"


def _api_finding(ctx: StatusContext, check: Check) -> Finding:
    """An API that failed: HTTP 5xx means no controller serves it; no answer means the VIP or HAProxy."""
    server_error = "HTTP 5" in check.detail
    nodes = ctx.group("controller") if server_error else ctx.group("loadbalancer")
    if server_error:
        action = f"look at {check.name}'s log on the controllers (/var/log/), see VerifyHAProxyBackends"
    else:
        action = "see VerifyVIPs and VerifyHAProxyBackends (the external VIP and HAProxy on the load balancers)"
    return Finding(Status.FAILURE, f"{check.name}: {check.detail}", tuple(n.name for n in nodes), action)


def verify_openstack_apis(ctx: StatusContext) -> Result:
    """Every API answers on the external VIP over verified TLS, and Keystone issues the admin a token."""
    api = ctx.api
    if api is None:
        raise (ctx.api_problem or Unavailable("no access to the APIs")).again()
    checks = fan_out(list(ctx.external_apis), lambda item: api.check(*item))
    findings = [_api_finding(ctx, c) for c in checks if not c.healthy]
    details = [f"{c.name}: {c.detail}" for c in checks]
    try:
        token_check, _token = ctx.admin_token()
    except Unavailable as error:
        findings.append(
            Finding(
                Status.WARNING,
                f"{'run as root to check' if error.needs_root else 'cannot check'} that Keystone issues "
                f"the admin a token ({error.why})",
                (),
                actions.run_as_root("the admin's token") if error.needs_root else error.hint,
            )
        )
    else:
        details.append(f"{token_check.name}: {token_check.detail}")
        if not token_check.healthy:
            unauthorized = "HTTP 401" in token_check.detail
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"Keystone issues no token to {ctx.model.openstack.admin_user}: {token_check.detail}",
                    tuple(n.name for n in ctx.group("controller")),
                    (
                        "Keystone refuses the stored keystone_admin_password; push it again: "
                        + actions.configure(ctx.deployment, "keystone")
                    )
                    if unauthorized
                    else "look at Keystone's log on the controllers (/var/log/keystone/)",
                )
            )
    return conclude(
        APIS,
        findings,
        ok=f"{len(checks)} APIs answer on the external VIP over verified TLS; the admin gets a token",
        details=details,
    )


def verify_nova_compute_services(ctx: StatusContext) -> Result:
    """Nova lists one nova-compute per vSphere compute cluster, each up and enabled."""
    api = ctx.api
    if api is None:
        raise (ctx.api_problem or Unavailable("no access to the APIs")).again()
    check, token = ctx.admin_token()
    if token is None:
        return not_checked(NOVA_COMPUTE, f"not checked: no admin token ({check.detail}; see VerifyOpenStackAPIs)")
    port = dict(ctx.external_apis)[NOVA_API]
    try:
        answer = api.get_json(port, COMPUTE_SERVICES_PATH, token)
        services = answer["services"]
    except ApiError as error:
        return conclude(
            NOVA_COMPUTE,
            [Finding(Status.FAILURE, f"cannot list the compute services: {error}", (), "see VerifyOpenStackAPIs")],
            ok="",
        )
    except (KeyError, TypeError):
        return conclude(
            NOVA_COMPUTE,
            [Finding(Status.FAILURE, "the compute API's answer has no 'services' list", (), "see VerifyOpenStackAPIs")],
            ok="",
        )
    # The service of a cluster is nova-compute-<slug>, its Nova host the slug (the nova_compute role).
    serving = {}
    for node in ctx.group("compute"):
        for cluster in node.compute_clusters:
            serving[cluster_slug(cluster)] = (cluster, node.name)
    _, unreachable = ctx.split_reachable(ctx.group("compute"))
    by_host = {str(s.get("host")): s for s in services if isinstance(s, dict)}
    findings, details, skipped = [], [], []
    for host, (cluster, node) in sorted(serving.items()):
        service = by_host.get(host)
        restart = actions.service("restart", "nova_compute", node, ctx.deployment)
        if node in unreachable:
            skipped.append(node)
            continue
        if service is None:
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"nova-compute of cluster {cluster} (host {host} on {node}) is not registered in Nova",
                    (node,),
                    restart,
                )
            )
            continue
        state, status = service.get("state"), service.get("status")
        details.append(f"{host} ({cluster} on {node}): {state}, {status}")
        if state != "up":
            findings.append(
                Finding(
                    Status.FAILURE,
                    f"nova-compute of cluster {cluster} (host {host} on {node}) is {state}",
                    (node,),
                    f"{restart}; look at /var/log/nova/nova-compute-{host}.log on {node}",
                )
            )
        elif status != "enabled":
            reason = service.get("disabled_reason") or "no reason given"
            findings.append(
                Finding(
                    Status.WARNING,
                    f"nova-compute of cluster {cluster} (host {host} on {node}) is disabled ({reason})",
                    (node,),
                    f"when the maintenance is over: openstack compute service set --enable {host} nova-compute",
                )
            )
    for host in sorted(set(by_host) - set(serving)):
        details.append(f"{host}: {by_host[host].get('state')}, {by_host[host].get('status')} (not in the inventory)")
    return conclude(
        NOVA_COMPUTE,
        findings,
        ok=f"nova-compute up and enabled for each of {len(serving) - len(skipped)} compute clusters",
        details=details,
        skipped=sorted(set(skipped)),
    )
