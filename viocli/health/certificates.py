"""VerifyCertificates: the certificate each load balancer's HAProxy serves on the external VIP.

HAProxy itself says what it loaded (``show ssl cert`` on its admin socket), so the check sees what a
reload really took, on the standby load balancer too (which holds no VIP to connect to). FAILURE when a
certificate has expired or the load balancers serve different ones (a failover would change what
clients see); WARNING under 30 days left.
"""

from __future__ import annotations

import datetime
import re

from viocli.health.balancer import ADMIN_SOCKET
from viocli.health.context import StatusContext
from viocli.health.result import Finding, Result, Status, conclude

CERTIFICATES = "VerifyCertificates"
EXTERNAL_PEM = "/etc/haproxy/external.pem"  # playbooks/roles/haproxy/tasks/config.yml
WARN_DAYS = 30
FIELD_RE = re.compile(r"^(?P<key>[A-Za-z0-9 ]+?):\s*(?P<value>.*)$")


def show_ssl_cert_command(path: str) -> str:
    """The command that asks HAProxy what it serves from ``path``."""
    return f'echo "show ssl cert {path}" | socat stdio {ADMIN_SOCKET}'


def parse_show_ssl_cert(text: str) -> dict[str, str]:
    """HAProxy's ``show ssl cert FILE`` output as {field: value}; the first occurrence of a field wins
    (the leaf's come before its chain's)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = FIELD_RE.match(line.strip())
        if match:
            fields.setdefault(match.group("key").strip(), match.group("value").strip())
    if "SHA1 FingerPrint" not in fields or "notAfter" not in fields:
        raise ValueError(" ".join(text.split())[:200] or "no output")
    return fields


def parse_openssl_time(value: str) -> datetime.datetime:
    """``Dec  6 07:00:00 2027 GMT`` (OpenSSL's ASN1_TIME_print) as an aware UTC datetime."""
    parsed = datetime.datetime.strptime(" ".join(value.split()), "%b %d %H:%M:%S %Y GMT")
    return parsed.replace(tzinfo=datetime.UTC)


def _subject(value: str) -> str:
    """HAProxy prints ``/CN=a/O=b``; operators read ``CN=a, O=b``."""
    return ", ".join(part for part in value.split("/") if part) or value


def verify_certificates(ctx: StatusContext, now: datetime.datetime | None = None) -> Result:
    """Every load balancer serves the same external certificate, valid for 30 days more."""
    now = now or datetime.datetime.now(datetime.UTC)
    balancers = ctx.group("loadbalancer")
    ran, skipped = ctx.run_on(balancers, show_ssl_cert_command(EXTERNAL_PEM))
    name = ctx.deployment
    findings: list[Finding] = []
    details: list[str] = []
    served: dict[str, dict[str, str]] = {}
    for lb, result in ran:
        try:
            if result.rc != 0:
                raise ValueError(result.reason())
            fields = parse_show_ssl_cert(result.stdout)
            expires = parse_openssl_time(fields["notAfter"])
        except ValueError as error:
            findings.append(
                Finding(
                    Status.WARNING,
                    f"{lb.name}: HAProxy does not say which certificate it serves ({error})",
                    (lb.name,),
                    "see VerifyHAProxyBackends",
                )
            )
            continue
        served[lb.name] = fields
        days = (expires - now).days
        subject, issuer = _subject(fields.get("Subject", "?")), _subject(fields.get("Issuer", "?"))
        details.append(
            f"{lb.name}: {subject}, issued by {issuer}, expires {expires:%Y-%m-%d %H:%M} UTC ({days} days), "
            f"SHA-1 {fields['SHA1 FingerPrint']}"
        )
        renew = f"renew it: sudo viocli deployment cert-req-create -d {name}, have it signed, then cert-update"
        if expires <= now:
            findings.append(
                Finding(Status.FAILURE, f"{lb.name}: the external certificate expired on {expires:%Y-%m-%d}",
                        (lb.name,), renew)
            )  # fmt: skip
        elif days < WARN_DAYS:
            findings.append(
                Finding(
                    Status.WARNING,
                    f"{lb.name}: the external certificate expires in {days} days ({expires:%Y-%m-%d})",
                    (lb.name,),
                    renew,
                )
            )
    prints = {lb: fields["SHA1 FingerPrint"] for lb, fields in served.items()}
    if len(set(prints.values())) > 1:
        findings.append(
            Finding(
                Status.FAILURE,
                "the load balancers serve different external certificates ("
                + "; ".join(f"{lb}: {_subject(served[lb].get('Subject', '?'))} {fp[:12]}" for lb, fp in prints.items())
                + "): a failover changes what clients see",
                tuple(sorted(prints)),
                f"serve the recorded one everywhere: sudo viocli deployment configure -d {name} -t haproxy",
            )
        )
    ok = "no load balancer answered"
    if served:
        first = next(iter(served.values()))
        expires = parse_openssl_time(first["notAfter"])
        ok = (
            f"{_subject(first.get('Subject', '?'))}, issued by {_subject(first.get('Issuer', '?'))}, "
            f"expires {expires:%Y-%m-%d} ({(expires - now).days} days), the same on {len(served)} load balancers"
        )
    return conclude(CERTIFICATES, findings, ok=ok, details=details, skipped=skipped)
