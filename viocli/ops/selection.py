"""Which nodes a command acts on: nodes named, and nodes of roles named as ``viocli show`` names them."""

from __future__ import annotations

from collections.abc import Sequence

from viocli.errors import BadInput
from viocli.inventory.modes import ROLE_LABELS
from viocli.inventory.topology import Node
from viocli.names import did_you_mean
from viocli.ops.context import Deployment


def role_group(role: str, flag: str = "-r") -> str:
    """The service group a role names, as ``viocli show`` labels it (``DB``) or by group (``database``)."""
    names = {label.lower(): group for group, label in ROLE_LABELS.items()} | {g: g for g in ROLE_LABELS}
    group = names.get(role.lower())
    if group is None:
        labels = list(ROLE_LABELS.values())
        close = did_you_mean(role, labels + list(ROLE_LABELS))
        guess = f"; did you mean {close}?" if close else ""
        raise BadInput(
            f"{flag} {role}: no such role{guess}", hint=f"roles, as viocli show names them: {', '.join(labels)}"
        )
    return group


def select_nodes(
    deployment: Deployment,
    names: Sequence[str],
    roles: Sequence[str],
    *,
    verb: str,
    flags: tuple[str, str] = ("-n", "-r"),
) -> list[Node]:
    """The nodes named and the nodes of the roles named, in the deployment's order; BadInput for an
    unknown one (with a did-you-mean), or when neither is given (``verb`` says for what)."""
    node_flag, role_flag = flags
    if not names and not roles:
        raise BadInput(
            f"say what to {verb}: {node_flag} NODE [NODE ...] or {role_flag} ROLE [ROLE ...]",
            hint="node names: viocli show",
        )
    known = [n.name for n in deployment.nodes]
    for name in names:
        if name not in known:
            close = did_you_mean(name, known)
            guess = f"; did you mean {close}?" if close else ""
            raise BadInput(
                f"{node_flag} {name}: deployment {deployment.name} has no such node{guess}",
                hint=f"its nodes: {', '.join(known)}",
            )
    groups = {role_group(role, role_flag) for role in roles}
    # A node holding several roles (tiny's, compact's controller) is a node of each of them.
    chosen = [n for n in deployment.nodes if n.name in names or groups.intersection(n.groups)]
    if not chosen:
        present = sorted({n.role_label for n in deployment.nodes})
        raise BadInput(
            f"deployment {deployment.name} has no node of role {', '.join(roles)}",
            hint=f"its roles: {', '.join(present)}",
        )
    return chosen
