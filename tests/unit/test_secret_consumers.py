"""Every secret viocli generates has a consumer in the playbooks: none is generated and left unused."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from viocli.secrets.catalog import GENERATED

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def _text() -> str:
    """The playbooks and templates without their comment lines (a comment is not a consumer)."""
    files = [p for p in sorted(PLAYBOOKS.rglob("*")) if p.suffix in (".yml", ".j2")]
    lines = [line for p in files for line in p.read_text(encoding="utf-8").splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith(("#", "{#")))


def _defaults(role: str) -> dict:
    return yaml.safe_load((PLAYBOOKS / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8"))


def _looked_up(kind: str) -> set[str]:
    """Services whose ``<service>_<kind>_password`` a role reads by name (``lookup('vars', user ~ ...)``)."""
    users = {
        "db": {entry["user"] for entry in _defaults("mariadb_galera")["mariadb_databases"]},
        "keystone": set(_defaults("keystone")["keystone_service_users"]),
        "rabbitmq": set(_defaults("rabbitmq")["rabbitmq_users"]),
    }[kind]
    assert re.search(rf"~ '_{kind}_password'|'\$', '_{kind}_password'", _text()), kind
    return users


def test_every_generated_secret_is_used_by_a_role() -> None:
    text = _text()
    by_lookup = {f"{user}_{kind}_password" for kind in ("db", "keystone", "rabbitmq") for user in _looked_up(kind)}
    unused = [name for name in GENERATED if name not in by_lookup and not re.search(rf"\b{name}\b", text)]
    assert unused == []


def test_haproxy_stats_page_is_behind_its_password() -> None:
    template = (PLAYBOOKS / "roles" / "haproxy" / "templates" / "haproxy.cfg.j2").read_text(encoding="utf-8")
    assert "stats auth {{ haproxy_stats_user }}:" in template and "haproxy_stats_password" in template
