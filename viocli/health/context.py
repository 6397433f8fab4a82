"""What every collector of one status run shares: the deployment, the means to reach its nodes and
APIs, the secrets this user may read, and the SSH reachability of each node, probed once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from viocli.health.api import Check
from viocli.health.parallel import Once, fan_out
from viocli.health.shell import COMMAND_TIMEOUT, CommandResult, NodeShell, ssh_banner
from viocli.inventory.model import Inventory
from viocli.inventory.topology import Node

REACH_COMMAND = "true"


class NoNodeReachable(Exception):
    """None of the nodes a collector checks answers SSH (VerifyNodeReachable reports them)."""

    def __init__(self, nodes: Sequence[str]):
        super().__init__(", ".join(nodes))
        self.nodes = list(nodes)


class Unavailable(Exception):
    """Something a check needs cannot be read: a secret, the SSH key, known_hosts, a CA file.

    ``why`` says what and where. ``needs_root``: root could read it (this user may not), so the
    collector reports a WARNING "run as root to check ..."; otherwise ``hint`` says how to fix it.
    """

    def __init__(self, why: str, *, needs_root: bool = True, hint: str = ""):
        super().__init__(why)
        self.why = why
        self.needs_root = needs_root
        self.hint = hint

    def again(self) -> Unavailable:
        """A fresh copy to raise (one exception object is not raised from several threads)."""
        return Unavailable(self.why, needs_root=self.needs_root, hint=self.hint)


@dataclass(frozen=True)
class Reach:
    """Whether a node answers SSH, and what it said (or why not)."""

    ok: bool
    detail: str
    key_checked: bool = True  # False: only sshd's banner was seen (the OMS key was not readable)


class ExternalApiClient(Protocol):
    """The OpenStack APIs through the external VIP (:class:`viocli.health.api.ExternalApi`)."""

    def check(self, name: str, port: int) -> Check: ...

    def token(self, user: str, project: str, password: str) -> tuple[Check, str | None]: ...

    def get_json(self, port: int, path: str, token: str) -> Any: ...


@dataclass
class StatusContext:
    """Inputs of every collector. Built by :func:`viocli.ops.status.deployment_status`; tests build fakes.

    ``shell`` is None when the OMS's SSH key or the deployment's known_hosts cannot be read
    (``shell_problem`` says which, raised by :meth:`run_on`); ``api`` is None when the CA of the
    external VIP cannot be read (``api_problem``). ``secrets`` maps a secret's name to its value, or
    raises :class:`Unavailable`.
    ``power_states`` asks vCenter for each node's VM power state (None: no such VM).
    """

    deployment: str
    model: Inventory
    nodes: list[Node]
    shell: NodeShell | None
    secrets: Callable[[str], str]
    power_states: Callable[[], Mapping[str, str | None]]
    api: ExternalApiClient | None
    external_apis: Sequence[tuple[str, int]]
    variables: Mapping[str, Any] = field(default_factory=dict)
    shell_problem: Unavailable | None = None
    api_problem: Unavailable | None = None

    def __post_init__(self) -> None:
        self._reachability: Once[dict[str, Reach]] = Once(self._probe_reachability)
        self._token: Once[tuple[Check, str | None]] = Once(self._issue_token)

    # --- nodes ---------------------------------------------------------------------------------
    def group(self, group: str) -> list[Node]:
        """The nodes in an Ansible group (``database``, ``controller``, ``loadbalancer``, ``compute``)."""
        return [n for n in self.nodes if group in n.groups]

    def reachability(self) -> dict[str, Reach]:
        """Every node's SSH reachability, probed once per run (concurrently) and shared by collectors."""
        return self._reachability.get()

    def split_reachable(self, nodes: Sequence[Node]) -> tuple[list[Node], list[str]]:
        """``nodes`` that answer SSH, and the names of those that do not (reported elsewhere)."""
        reach = self.reachability()
        up = [n for n in nodes if reach[n.name].ok]
        return up, [n.name for n in nodes if not reach[n.name].ok]

    def run_on(
        self, nodes: Sequence[Node], command: str | Callable[[Node], str], timeout: float = COMMAND_TIMEOUT
    ) -> tuple[list[tuple[Node, CommandResult]], list[str]]:
        """Run ``command`` (or ``command(node)``) on every reachable node of ``nodes`` at once.

        Returns each reachable node with its result, and the names of the unreachable ones (skipped).
        Raises Unavailable when this user cannot use SSH, NoNodeReachable when no node answers.
        """
        shell = self.shell
        if shell is None:
            raise (self.shell_problem or Unavailable("no SSH access to the nodes")).again()
        up, skipped = self.split_reachable(nodes)
        if nodes and not up:
            raise NoNodeReachable(skipped)

        def one(node: Node) -> CommandResult:
            return shell.run(node, command(node) if callable(command) else command, timeout)

        return list(zip(up, fan_out(up, one), strict=True)), skipped

    def _probe_reachability(self) -> dict[str, Reach]:
        shell = self.shell

        def probe(node: Node) -> Reach:
            if shell is None:
                ok, detail = ssh_banner(str(node.mgmt_ip))
                return Reach(ok, detail, key_checked=False)
            result = shell.run(node, REACH_COMMAND)
            if result.rc == 0:
                return Reach(True, f"SSH to {node.mgmt_ip} works")
            return Reach(False, result.reason())

        return dict(zip((n.name for n in self.nodes), fan_out(self.nodes, probe), strict=True))

    # --- APIs ----------------------------------------------------------------------------------
    def admin_token(self) -> tuple[Check, str | None]:
        """The admin's token from Keystone, asked once per run; Unavailable if the password is unreadable."""
        return self._token.get()

    def _issue_token(self) -> tuple[Check, str | None]:
        if self.api is None:
            raise (self.api_problem or Unavailable("no access to the APIs")).again()
        password = self.secrets("keystone_admin_password")
        openstack = self.model.openstack
        return self.api.token(openstack.admin_user, openstack.admin_project, password)
