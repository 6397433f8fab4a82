"""Connect to vCenter with TLS verification on (a CA file, or the system CAs); insecure only on request."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from viocli.errors import BadInput, OperationFailed


class VcenterUnreachable(OperationFailed):
    """vCenter did not answer at all (exit 1 like any failed step; ``deployment destroy`` makes it 3)."""


def ssl_context(ca_file: Path | None, insecure: bool = False) -> ssl.SSLContext:
    """Verification on unless ``insecure``; ``ca_file`` replaces the system CAs when given."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def connect(
    host: str, port: int, user: str, password: str, *, ca_file: Path | None = None, insecure: bool = False
) -> Any:
    """Log in and return the ServiceInstance; each failure says what and where."""
    from pyVim.connect import SmartConnect
    from pyVmomi import vim

    where = f"vCenter {host}:{port}"
    try:
        return SmartConnect(host=host, port=port, user=user, pwd=password, sslContext=ssl_context(ca_file, insecure))
    except vim.fault.InvalidLogin:
        raise BadInput(
            f"{where} refused the login of {user}",
            hint="check vcenter.user and the stored password (sudo viocli secrets set vcenter_password)",
        ) from None
    except ssl.SSLCertVerificationError as error:
        raise OperationFailed(
            f"{where}: TLS certificate not trusted: {error.verify_message}",
            hint="set vcenter.tls.ca_file to the CA that signed it",
        ) from None
    except (OSError, ConnectionError) as error:
        raise VcenterUnreachable(f"cannot reach {where}: {error}", hint="check vcenter.host and port") from None
