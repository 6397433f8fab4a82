"""Client loops that run while a test changes the deployment, and record what the clients saw.

A test asserts on the records (no failed request, no acknowledged write lost), never on timing.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMEOUT = 30.0


@dataclass(frozen=True)
class Request:
    """One request a client made: when, what, and whether it succeeded."""

    at: float
    what: str
    ok: bool
    detail: str


@dataclass
class ApiClientLoop:
    """A client that, until stopped, gets a token from Keystone and lists Nova's flavors with it,
    both through the external VIP over verified TLS, as an operator's client does; it records each request.
    """

    host: str
    password: str
    ca_file: Path
    user: str = "admin"
    project: str = "admin"
    keystone_port: int = 5000
    nova_port: int = 8774
    pause: float = 0.2
    records: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-client-loop", daemon=True)
        self._context = ssl.create_default_context(cafile=str(self.ca_file))

    def __enter__(self) -> ApiClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * TIMEOUT)

    @property
    def failures(self) -> list[Request]:
        return [r for r in self.records if not r.ok]

    def _call(self, what: str, request: urllib.request.Request, expect: int) -> tuple[bool, Any]:
        try:
            response = urllib.request.urlopen(request, context=self._context, timeout=TIMEOUT)
        except urllib.error.HTTPError as error:
            self.records.append(Request(time.time(), what, False, f"HTTP {error.code}: {error.read()[:200]!r}"))
            return False, None
        except (urllib.error.URLError, OSError) as error:
            self.records.append(Request(time.time(), what, False, str(getattr(error, "reason", error))))
            return False, None
        ok = response.status == expect
        self.records.append(Request(time.time(), what, ok, f"HTTP {response.status}"))
        return ok, response

    def _token(self) -> str | None:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": self.user, "domain": {"id": "default"}, "password": self.password}},
                },
                "scope": {"project": {"name": self.project, "domain": {"id": "default"}}},
            }
        }
        request = urllib.request.Request(
            f"https://{self.host}:{self.keystone_port}/v3/auth/tokens",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        ok, response = self._call("token", request, 201)
        if not ok or response is None:
            return None
        with response:
            return response.headers.get("X-Subject-Token")

    def _run(self) -> None:
        while not self._stop.is_set():
            token = self._token()
            if token:
                request = urllib.request.Request(
                    f"https://{self.host}:{self.nova_port}/v2.1/flavors", headers={"X-Auth-Token": token}
                )
                _, response = self._call("flavors", request, 200)
                if response is not None:
                    response.close()
            self._stop.wait(self.pause)


@dataclass
class RowWriterLoop:
    """A client that, until stopped, inserts numbered rows through the internal VIP, one transaction
    each, and records the numbers whose COMMIT MariaDB acknowledged (a failed one is retried on a new
    connection with the next number). Afterwards every acknowledged number must be in the table.
    Each loop writes to a table of its own, so loops of earlier tests never collide with its numbers.
    """

    host: str
    user: str
    password: str
    database: str
    ca_file: Path | None = None  # TLS verified against this CA (the deployment's, with internal_tls)
    table: str = field(default_factory=lambda: f"acknowledged_{uuid.uuid4().hex[:12]}")
    pause: float = 0.05
    # renew the connection after this many seconds: writing every `pause`, it is never idle, so a Galera
    # member taken out of HAProxy's backend would wait for it until its drain gives up (the playbooks'
    # mariadb_drain_timeout), where a service's pool, idle between requests, is let go at once
    recycle: float = 10.0
    acknowledged: list[int] = field(default_factory=list)
    acknowledged_at: list[float] = field(default_factory=list)  # when each COMMIT was acknowledged
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="row-writer-loop", daemon=True)

    def connect(self):
        import pymysql

        tls = {"ssl": {"ca": str(self.ca_file)}} if self.ca_file else {}
        return pymysql.connect(
            host=self.host, user=self.user, password=self.password, database=self.database,
            connect_timeout=5, read_timeout=15, write_timeout=15, autocommit=False, **tls,
        )  # fmt: skip

    def __enter__(self) -> RowWriterLoop:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (n INT PRIMARY KEY) ENGINE=InnoDB")
            connection.commit()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        number, connection, connected_at = 0, None, 0.0
        while not self._stop.is_set():
            number += 1
            try:
                if connection is not None and time.monotonic() - connected_at > self.recycle:
                    connection.close()
                    connection = None
                if connection is None:
                    connection, connected_at = self.connect(), time.monotonic()
                with connection.cursor() as cursor:
                    cursor.execute(f"INSERT INTO {self.table} (n) VALUES (%s)", (number,))
                connection.commit()
                self.acknowledged.append(number)
                self.acknowledged_at.append(time.time())
            except Exception as error:  # any failure: the write was not acknowledged
                self.errors.append(f"{number}: {error}")
                if connection is not None:
                    with contextlib.suppress(Exception):  # a dead connection may not close cleanly
                        connection.close()
                connection = None
                self._stop.wait(0.5)
            self._stop.wait(self.pause)

    def wait_acknowledged(self, count: int, timeout: float = 120) -> None:
        """Wait until ``count`` more rows are acknowledged (the fault then hits a client that writes)."""
        target = len(self.acknowledged) + count
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < target:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} rows acknowledged: {self.errors[-3:]}"
            self._stop.wait(0.1)

    def missing(self) -> list[int]:
        """Acknowledged numbers that are not in the table (read through the VIP)."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT n FROM {self.table}")
            stored = {row[0] for row in cursor.fetchall()}
        return sorted(set(self.acknowledged) - stored)
