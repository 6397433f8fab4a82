"""Which secrets a deployment has and how each is generated.

Values are strong random strings from :mod:`secrets`; formats follow what each consumer accepts
(Fernet keys are 32 url-safe base64 bytes, VRRP auth_pass is at most 8 characters, the Erlang
cookie is upper-case letters).
"""

from __future__ import annotations

import base64
import os
import secrets
import string
from collections.abc import Callable
from typing import Any

SERVICES_WITH_DB = ("keystone", "glance", "placement", "nova", "neutron", "cinder", "heat")
SERVICES_IN_KEYSTONE = ("glance", "placement", "nova", "neutron", "cinder", "heat")
SERVICES_ON_RABBITMQ = ("nova", "neutron", "cinder", "heat")


def _password(length: int = 32) -> Callable[[], str]:
    alphabet = string.ascii_letters + string.digits
    return lambda: "".join(secrets.choice(alphabet) for _ in range(length))


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def _erlang_cookie() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(32))


def _build() -> dict[str, Callable[[], Any]]:
    catalog: dict[str, Callable[[], Any]] = {
        "keystone_admin_password": _password(),
        "heat_domain_admin_password": _password(),
        "rabbitmq_erlang_cookie": _erlang_cookie,
        # Fernet key repository: index 0 is the staged key, the highest the primary.
        "keystone_fernet_keys": lambda: [_fernet_key() for _ in range(3)],
        "keystone_credential_keys": lambda: [_fernet_key() for _ in range(2)],
        "memcache_secret_key": _password(),
        "horizon_secret_key": _password(48),
        "heat_auth_encryption_key": _password(32),
        "haproxy_stats_password": _password(),
        "keepalived_vrrp_password": _password(8),
    }
    for service in SERVICES_WITH_DB:
        catalog[f"{service}_db_password"] = _password()
    for service in SERVICES_IN_KEYSTONE:
        catalog[f"{service}_keystone_password"] = _password()
    for service in SERVICES_ON_RABBITMQ:
        catalog[f"{service}_rabbitmq_password"] = _password()
    return dict(sorted(catalog.items()))


GENERATED: dict[str, Callable[[], Any]] = _build()


def secret_names(vcenter_password_secret: str = "vcenter_password") -> list[str]:
    """Every secret variable name a deployment has, the operator-supplied vCenter password included."""
    return sorted({*GENERATED, vcenter_password_secret})


def secret_values(value: Any) -> list[str]:
    """Flatten a secret (a string or a list of keys) into the strings to redact."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return [str(v) for v in value.values()]
    return [] if value is None else [str(value)]


# The service accounts' passwords: what `secrets rotate --all-services` replaces.
SERVICE_CREDENTIALS: tuple[str, ...] = tuple(
    sorted(
        [
            *(f"{service}_db_password" for service in SERVICES_WITH_DB),
            *(f"{service}_keystone_password" for service in SERVICES_IN_KEYSTONE),
            *(f"{service}_rabbitmq_password" for service in SERVICES_ON_RABBITMQ),
            "heat_domain_admin_password",
        ]
    )
)
# Secrets whose every consumer takes a new value from configure (config files, MariaDB, RabbitMQ and
# Keystone users), so that `secrets rotate` may replace them.
ROTATABLE = frozenset(
    {
        *SERVICE_CREDENTIALS,
        "keystone_admin_password",
        "memcache_secret_key",
        "haproxy_stats_password",
        "horizon_secret_key",
    }
)
# Why the others are not replaced by `secrets rotate`.
NOT_ROTATABLE = {
    "keystone_fernet_keys": "Fernet keys rotate by staging a new key, never all at once: every token would die",
    "keystone_credential_keys": "the credentials Keystone stores are encrypted with them; new keys would lose them",
    "heat_auth_encryption_key": "Heat's stored credentials are encrypted with it; a new key would make them unreadable",
    "rabbitmq_erlang_cookie": "a new Erlang cookie needs every RabbitMQ node stopped at once (a full outage)",
    "keepalived_vrrp_password": "the two load balancers would disagree while it changes and both would take the VIPs",
}
OPERATOR_SECRET = "it belongs to vCenter: change it there, then store it with: sudo viocli secrets set {name}"
