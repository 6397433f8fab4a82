"""Health of a deployed control plane as an operator's client sees it: through the external VIP, over TLS.

Every API in the catalog must answer on the external VIP with a certificate that verifies, and Keystone
must issue the admin a token. Checks retry for a while, since services restarted by the last run may
still be starting.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    """One health check and its outcome."""

    name: str
    healthy: bool
    detail: str


def external_apis(playbook_dir: Path) -> list[tuple[str, int]]:
    """(name, port) of every API HAProxy publishes on the external VIP (the haproxy role's defaults)."""
    import yaml

    defaults = yaml.safe_load((playbook_dir / "roles" / "haproxy" / "defaults" / "main.yml").read_text())
    return [
        (service["name"], int(service.get("external_port", service["port"])))
        for service in defaults["haproxy_services"]
        if service.get("external", True)
    ]


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying TLS context: the deployment's generated CA, else the system's trust store."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def check_api(host: str, name: str, port: int, context: ssl.SSLContext) -> Check:
    """The API answers on ``host:port`` over verified TLS without a server error."""
    url = f"https://{host}:{port}/"
    try:
        with urllib.request.urlopen(url, context=context, timeout=REQUEST_TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        return Check(name, False, f"{url}: {getattr(error, 'reason', error)}")
    return Check(name, status < 500, f"{url}: HTTP {status}")


def check_token(host: str, user: str, project: str, password: str, context: ssl.SSLContext) -> Check:
    """Keystone issues ``user`` a project-scoped token through the external VIP."""
    url = f"https://{host}:5000/v3/auth/tokens"
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}},
            },
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }
    }
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=REQUEST_TIMEOUT) as response:
            ok = response.status == 201 and bool(response.headers.get("X-Subject-Token"))
            return Check("keystone token", ok, f"{url}: HTTP {response.status}")
    except urllib.error.HTTPError as error:
        return Check("keystone token", False, f"{url}: HTTP {error.code}")
    except (urllib.error.URLError, OSError) as error:
        return Check("keystone token", False, f"{url}: {getattr(error, 'reason', error)}")


def wait_healthy(checks: list[Callable[[], Check]], timeout: float = 120.0) -> list[Check]:
    """Run every check until all pass or ``timeout`` passes; return the last outcome of each."""
    deadline = time.monotonic() + timeout
    results: dict[int, Check] = {}
    pending = list(enumerate(checks))
    while True:
        still = []
        for index, check in pending:
            results[index] = check()
            if not results[index].healthy:
                still.append((index, check))
        pending = still
        if not pending or time.monotonic() > deadline:
            return [results[i] for i in range(len(checks))]
        time.sleep(2)  # services restarted by the run need a moment; nothing to wait on but the port
