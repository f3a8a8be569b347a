"""TLS and mTLS against the Go sink, with a CA, server and client certificates made in the test.

A wrong CA must fail with one clear sentence naming the endpoint and the CA file, and keep the
data spooled; a server that wants a client certificate must refuse a client without one.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgecollect.exporters.tls import grpc_credentials, ssl_context, system_ca_bundle, tls_failure
from edgecollect.exporters.upstream import TlsConfig, UpstreamConfig
from tests.exporters.conftest import Filler, assert_all_arrived, config, forwarding, metric_values
from tests.support.wait import wait_until

HOUR, DAY = datetime.timedelta(hours=1), datetime.timedelta(days=1)


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - HOUR).not_valid_after(now + DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(cn: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
          usage: x509.ObjectIdentifier) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - HOUR).not_valid_after(now + DAY)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = _ca("edgecollect test CA")
    other, _ = _ca("some other CA")
    server, server_key = _leaf("localhost", ca, ca_key, ExtendedKeyUsageOID.SERVER_AUTH)
    client, client_key = _leaf("gw-test", ca, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(_write_cert(d / "ca.pem", ca), _write_cert(d / "other-ca.pem", other),
               _write_cert(d / "server.pem", server), _write_key(d / "server.key", server_key),
               _write_cert(d / "client.pem", client), _write_key(d / "client.key", client_key))


def tls_config(endpoint: str, tls: TlsConfig, **kw: Any) -> UpstreamConfig:
    return config(endpoint, tls=tls, **kw)


def endpoint_for(sink: Any, protocol: str) -> str:
    if protocol == "otlp_http":
        return "https://" + localhost(sink.http_address)
    return localhost(sink.grpc_address)


def localhost(address: str) -> str:
    return "localhost:" + address.rsplit(":", 1)[1]


def retries(filler: Filler) -> dict[str, int]:
    found = filler.telemetry.find("edgecollect.upstream.retries")
    return found.snapshot() if found is not None else {}


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["otap", "otlp_http"])
def test_tls_with_private_ca(make_sink: Any, filler: Filler, pki: Pki, protocol: str) -> None:
    sink = make_sink(tls_cert=pki.server_cert, tls_key=pki.server_key).start()
    filler.metrics(50)
    endpoint = endpoint_for(sink, protocol)
    with forwarding(tls_config(endpoint, TlsConfig(ca_file=str(pki.ca)), protocol=protocol), filler):
        wait_until(lambda: filler.spool.stats().files == 0, 30, "delivery over TLS")
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), f"TLS {protocol}")


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["otap", "otlp_http"])
def test_mtls(make_sink: Any, filler: Filler, pki: Pki, protocol: str) -> None:
    sink = make_sink(tls_cert=pki.server_cert, tls_key=pki.server_key, client_ca=pki.ca).start()
    filler.metrics(50)
    endpoint = endpoint_for(sink, protocol)
    tls = TlsConfig(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    with forwarding(tls_config(endpoint, tls, protocol=protocol), filler):
        wait_until(lambda: filler.spool.stats().files == 0, 30, "delivery over mTLS")
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), f"mTLS {protocol}")


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["otap", "otlp_http"])
def test_wrong_ca_fails_with_a_clear_error(
    make_sink: Any, filler: Filler, pki: Pki, protocol: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    sink = make_sink(tls_cert=pki.server_cert, tls_key=pki.server_key).start()
    filler.metrics(50)
    endpoint = endpoint_for(sink, protocol)
    cfg = tls_config(endpoint, TlsConfig(ca_file=str(pki.other_ca)), protocol=protocol)
    with forwarding(cfg, filler) as fwd:
        wait_until(lambda: retries(filler).get("tls", 0) >= 2, 30, "two failed handshakes")
        st = fwd.status()
    assert st.state == "offline"
    error = st.last_error
    assert f"TLS handshake with {endpoint} failed" in error
    assert f"ca_file {pki.other_ca}" in error
    assert f"TLS handshake with {endpoint} failed" in caplog.text and str(pki.other_ca) in caplog.text
    assert filler.spool.stats().files == 1, "the batch stays spooled"
    assert not sink.records()


@pytest.mark.integration
def test_mtls_server_refuses_client_without_certificate(make_sink: Any, filler: Filler, pki: Pki) -> None:
    sink = make_sink(tls_cert=pki.server_cert, tls_key=pki.server_key, client_ca=pki.ca).start()
    filler.metrics(10)
    with forwarding(tls_config(localhost(sink.grpc_address), TlsConfig(ca_file=str(pki.ca))), filler):
        wait_until(lambda: sum(retries(filler).values()) >= 2, 30, "two refused attempts")
    assert filler.spool.stats().files == 1
    assert not sink.records()


def test_tls_config_rules(pki: Pki) -> None:
    with pytest.raises(ValueError, match=r"cert_file and tls\.key_file"):
        TlsConfig(cert_file=str(pki.client_cert))
    with pytest.raises(ValueError, match="not both"):
        TlsConfig(insecure=True, ca_file=str(pki.ca))
    with pytest.raises(ValueError, match=r"tls\.insecure"):
        UpstreamConfig(endpoint="http://collector:4318", protocol="otlp_http")
    with pytest.raises(ValueError, match="pick one"):
        UpstreamConfig(endpoint="https://collector:4318", tls=TlsConfig(insecure=True))
    assert grpc_credentials(TlsConfig(insecure=True)) is None
    assert grpc_credentials(TlsConfig()) is not None  # system CAs by default
    assert ssl_context(TlsConfig(insecure=True)) is None
    mtls = TlsConfig(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    ctx = ssl_context(mtls)
    assert ctx is not None and ctx.check_hostname


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    from edgecollect.errors import UpstreamFault

    with pytest.raises(UpstreamFault, match=re.escape(str(tmp_path / "nope.pem"))):
        grpc_credentials(TlsConfig(ca_file=str(tmp_path / "nope.pem")))
    with pytest.raises(UpstreamFault, match=r"nope\.pem"):
        ssl_context(TlsConfig(ca_file=str(tmp_path / "nope.pem")))


def test_tls_failure_sentence_names_endpoint_and_trust() -> None:
    text = tls_failure("gw:4317", TlsConfig(ca_file="/etc/ca.pem"), "CERTIFICATE_VERIFY_FAILED")
    assert text.startswith("TLS handshake with gw:4317 failed")
    assert "ca_file /etc/ca.pem" in text
    assert ("system CA store" in tls_failure("gw:4317", TlsConfig(), "x")) == (system_ca_bundle() is not None)


def test_system_store_is_used_when_no_ca_file(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    # SSL_CERT_FILE is how OpenSSL (and so Python) is told where the system store is.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    assert system_ca_bundle() == str(pki.ca)
    assert f"system CA store ({pki.ca})" in tls_failure("gw:4317", TlsConfig(), "x")


@pytest.mark.integration
def test_private_ca_in_the_system_store_is_trusted(
    make_sink: Any, filler: Filler, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    sink = make_sink(tls_cert=pki.server_cert, tls_key=pki.server_key).start()
    filler.metrics(20)
    with forwarding(tls_config(localhost(sink.grpc_address), TlsConfig()), filler):
        wait_until(lambda: filler.spool.stats().files == 0, 30, "delivery trusting the system store")
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "system store")
