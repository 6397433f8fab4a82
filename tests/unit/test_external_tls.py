"""The external VIP's certificate (generated or the operator's) and the health check that verifies it."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from viocli import pki
from viocli.errors import BadInput
from viocli.health import api as health
from viocli.inventory.load import load_inventory
from viocli.ops.tls import external_ca_file, external_pem
from viocli.settings import share_dir


def _model(example, edit=None):
    path = example("ha")
    if edit:
        data = yaml.safe_load(path.read_text())
        edit(data, path.parent)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_inventory(path).model


def _certs(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def test_generated_certificate_names_the_vip_and_fqdn_and_is_reused(example, tmp_path: Path) -> None:
    model = _model(example)
    pem = external_pem(model, tmp_path)
    server, ca = _certs(pem)
    assert "PRIVATE KEY" in pem
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert str(model.vips.external) in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert names.get_values_for_type(x509.DNSName) == [model.vips.external_fqdn]
    assert external_ca_file(tmp_path).read_bytes() == ca.public_bytes(ssl_encoding())
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "tls").glob("*.key")} == {0o600}
    assert external_pem(model, tmp_path) == pem  # kept while valid: no churn, no restart


def test_operator_certificate_is_served_as_given(example, tmp_path: Path) -> None:
    files = pki.ensure_server_cert(
        pki.CertFiles(tmp_path / "ca.pem", tmp_path / "ca.key", tmp_path / "srv.pem", tmp_path / "srv.key"),
        ["openstack.example.com"],
        ca_name="Operator CA",
        cert_name="openstack.example.com",
    )

    def edit(data, _folder):
        data["external_tls"] = {
            "cert_file": str(files.cert),
            "key_file": str(files.key),
            "chain_file": str(files.ca_cert),
        }

    model = _model(example, edit)
    pem = external_pem(model, tmp_path / "deployment")
    assert pem == files.cert.read_text() + files.ca_cert.read_text() + files.key.read_text()
    assert not (tmp_path / "deployment" / "tls").exists()
    files.key.unlink()
    with pytest.raises(BadInput, match=r"srv\.key"):
        external_pem(model, tmp_path / "deployment")


def test_external_apis_are_the_ones_haproxy_publishes() -> None:
    apis = dict(health.external_apis(share_dir("playbooks")))
    assert apis["keystone"] == 5000 and apis["nova_api"] == 8774 and apis["horizon"] == 443


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, type[_Handler]]]:
    files = pki.ensure_server_cert(
        pki.CertFiles(tmp_path / "ca.pem", tmp_path / "ca.key", tmp_path / "srv.pem", tmp_path / "srv.key"),
        ["127.0.0.1"],
        ca_name="test CA",
        cert_name="127.0.0.1",
    )
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], files.ca_cert, handler
    server.shutdown()
    server.server_close()


def test_check_api_verifies_tls_and_tells_server_errors(tls_server, tmp_path: Path) -> None:
    port, ca_file, handler = tls_server
    context = health.tls_context(ca_file)
    assert health.check_api("127.0.0.1", "keystone", port, context).healthy
    handler.status = 300  # glance and cinder answer their root with "multiple choices"
    assert health.check_api("127.0.0.1", "glance", port, context).healthy
    handler.status = 503  # HAProxy with no backend up
    check = health.check_api("127.0.0.1", "nova", port, context)
    assert not check.healthy and "HTTP 503" in check.detail
    other = pki.ensure_server_cert(
        pki.CertFiles(tmp_path / "o.pem", tmp_path / "o.key", tmp_path / "os.pem", tmp_path / "os.key"),
        ["127.0.0.1"],
        ca_name="another CA",
        cert_name="x",
    )
    handler.status = 200
    untrusted = health.check_api("127.0.0.1", "keystone", port, health.tls_context(other.ca_cert))
    assert not untrusted.healthy and "CERTIFICATE_VERIFY_FAILED" in untrusted.detail


def ssl_encoding():
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM
