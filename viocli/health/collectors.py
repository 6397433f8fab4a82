"""Every collector of ``deployment status``, and the runner that runs them all at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from viocli.health import actions, balancer, certificates, database, memcached, nodes, openstack, vcenter
from viocli.health.context import NoNodeReachable, StatusContext, Unavailable
from viocli.health.result import Result, Status, not_checked
from viocli.logsetup import active_log_file, get_logger


@dataclass(frozen=True)
class Collector:
    """A named check: ``check(ctx)`` returns its result; ``what`` names what it checks, for messages."""

    name: str
    what: str
    check: Callable[[StatusContext], Result]


COLLECTORS: tuple[Collector, ...] = (
    Collector(vcenter.POWER, "the VMs' power state in vCenter", vcenter.verify_vm_power_state),
    Collector(nodes.REACHABLE, "SSH to the nodes", nodes.verify_node_reachable),
    Collector(nodes.TIME, "time synchronization", nodes.verify_time_synchronization),
    Collector(database.GALERA, "the Galera cluster", database.verify_galera_cluster),
    Collector(database.RABBITMQ, "the RabbitMQ cluster", database.verify_rabbitmq_cluster),
    Collector(memcached.MEMCACHED, "memcached", memcached.verify_memcached),
    Collector(balancer.HAPROXY, "HAProxy's backends", balancer.verify_haproxy_backends),
    Collector(balancer.VIPS, "the VIPs", balancer.verify_vips),
    Collector(certificates.CERTIFICATES, "the external certificate", certificates.verify_certificates),
    Collector(openstack.APIS, "the OpenStack APIs", openstack.verify_openstack_apis),
    Collector(openstack.NOVA_COMPUTE, "the nova-compute services", openstack.verify_nova_compute_services),
    Collector(nodes.DISK, "disk space", nodes.verify_disk_space),
)


def run_one(collector: Collector, ctx: StatusContext) -> Result:
    """Run one collector; what it could not check becomes a WARNING, a crash a FAILURE naming the error."""
    started = time.monotonic()
    try:
        result = collector.check(ctx)
    except Unavailable as error:
        if error.needs_root:
            result = not_checked(
                collector.name,
                f"run as root to check {collector.what} ({error.why})",
                actions.run_as_root(collector.what),
            )
        else:
            result = not_checked(collector.name, f"cannot check {collector.what}: {error.why}", error.hint)
    except NoNodeReachable as error:
        result = not_checked(
            collector.name,
            f"{collector.what} not checked: none of {', '.join(error.nodes)} answers SSH (see VerifyNodeReachable)",
        )
    except Exception as error:  # a check must never take the others down with it
        get_logger().exception("collector %s failed", collector.name)
        result = Result(
            collector.name,
            Status.FAILURE,
            [],
            f"the check itself failed: {type(error).__name__}: {error}",
            f"see {active_log_file() or 'the log (as root)'} and report it",
        )
    result.elapsed_s = time.monotonic() - started
    return result


def run_collectors(ctx: StatusContext, collectors: Sequence[Collector] = COLLECTORS) -> list[Result]:
    """Run every collector at once (one thread each); results in the collectors' order."""
    if not collectors:
        return []
    with ThreadPoolExecutor(max_workers=len(collectors), thread_name_prefix="viocli-collector") as pool:
        return list(pool.map(lambda c: run_one(c, ctx), collectors))
