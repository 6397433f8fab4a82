"""The OpenStack APIs as an operator's client sees them: through the external VIP, over verified TLS.

Every API in the catalog must answer on the external VIP with a certificate that verifies, and Keystone
must issue the admin a token. ``deployment create`` waits for that (:func:`wait_healthy`);
``deployment status`` checks it once.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    """One health check and its outcome."""

    name: str
    healthy: bool
    detail: str


class ApiError(Exception):
    """An API call through the external VIP failed; the message names the URL and why."""


def external_apis(playbook_dir: Path, overrides: Mapping[str, Any] | None = None) -> list[tuple[str, int]]:
    """(name, port) of every API HAProxy publishes on the external VIP, from the service descriptors.

    ``overrides`` are custom.yml's variables: a port moved there moves here too.
    """
    from viocli.services import external_apis as descriptor_apis

    return descriptor_apis(overrides, playbook_dir)


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying TLS context: the deployment's generated CA, else the system's trust store."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def check_api(host: str, name: str, port: int, context: ssl.SSLContext, timeout: float = REQUEST_TIMEOUT) -> Check:
    """The API answers on ``host:port`` over verified TLS without a server error."""
    url = f"https://{host}:{port}/"
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        return Check(name, False, f"{url}: {getattr(error, 'reason', error)}")
    return Check(name, status < 500, f"{url}: HTTP {status}")


def issue_token(
    host: str,
    user: str,
    project: str,
    password: str,
    context: ssl.SSLContext,
    timeout: float = REQUEST_TIMEOUT,
) -> tuple[Check, str | None]:
    """Ask Keystone for a project-scoped token for ``user`` through the external VIP.

    Returns the outcome and, when Keystone issued one, the token.
    """
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
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            token = response.headers.get("X-Subject-Token")
            ok = response.status == 201 and bool(token)
            return Check("keystone token", ok, f"{url}: HTTP {response.status}"), token if ok else None
    except urllib.error.HTTPError as error:
        return Check("keystone token", False, f"{url}: HTTP {error.code}"), None
    except (urllib.error.URLError, OSError) as error:
        return Check("keystone token", False, f"{url}: {getattr(error, 'reason', error)}"), None


def check_token(host: str, user: str, project: str, password: str, context: ssl.SSLContext) -> Check:
    """Keystone issues ``user`` a project-scoped token through the external VIP."""
    return issue_token(host, user, project, password, context)[0]


def get_json(url: str, token: str, context: ssl.SSLContext, timeout: float = REQUEST_TIMEOUT) -> Any:
    """GET ``url`` with ``token`` and return the decoded JSON body; ApiError says what failed."""
    request = urllib.request.Request(url, headers={"X-Auth-Token": token, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        raise ApiError(f"{url}: HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ApiError(f"{url}: {getattr(error, 'reason', error)}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(f"{url}: the answer is not JSON ({error})") from None


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


class ExternalApi:
    """The APIs through the external VIP (``host`` as the public endpoints name it), TLS verified."""

    def __init__(self, host: str, ca_file: Path | None, timeout: float = REQUEST_TIMEOUT):
        self.host = host
        self.context = tls_context(ca_file)
        self.timeout = timeout

    def check(self, name: str, port: int) -> Check:
        """The API ``name`` answers on ``port`` without a server error."""
        return check_api(self.host, name, port, self.context, self.timeout)

    def token(self, user: str, project: str, password: str) -> tuple[Check, str | None]:
        """A project-scoped token for ``user`` (see :func:`issue_token`)."""
        return issue_token(self.host, user, project, password, self.context, self.timeout)

    def get_json(self, port: int, path: str, token: str) -> Any:
        """GET ``https://host:port/path`` with ``token``; ApiError says what failed."""
        return get_json(f"https://{self.host}:{port}{path}", token, self.context, self.timeout)
