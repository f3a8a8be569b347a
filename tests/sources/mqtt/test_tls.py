"""mqtts:// with a CA file, a client certificate and a password from `env:`, against a real
mosquitto that requires all three; wrong credentials are counted and retried, never fatal."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from edgecollect.configtypes import Duration, Secret
from edgecollect.sources.mqtt import MqttConfig, MqttSource, SubscribeConfig, TlsConfig
from tests.sources.mqtt.mqtt_support import make_context
from tests.support.broker import Broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool, path: Path) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Path]]:
    d = tmp_path_factory.mktemp("mosquitto-tls")
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _cert("edgecollect test CA", ca_key, None, ca_key, True, d / "ca.pem")
    _cert("127.0.0.1", server_key, ca.subject, ca_key, False, d / "server.pem")
    _cert("gateway", client_key, ca.subject, ca_key, False, d / "client.pem")
    _write_key(server_key, d / "server.key")
    _write_key(client_key, d / "client.key")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(d / "passwd"), "gw", "s3cret"], check=True)
    broker = Broker(d, (
        "allow_anonymous false",
        f"password_file {d / 'passwd'}",
        f"cafile {d / 'ca.pem'}",
        f"certfile {d / 'server.pem'}",
        f"keyfile {d / 'server.key'}",
        "require_certificate true",
    ))
    broker.start()
    try:
        yield broker, d
    finally:
        broker.stop()


def tls_config(broker: Broker, certs: Path, password: str, topic: str) -> MqttConfig:
    return MqttConfig(
        server=f"mqtts://127.0.0.1:{broker.port}", client_id=f"tls-{topic}", username="gw",
        password=Secret(password), qos=1, reconnect_min=Duration(0.05), reconnect_max=Duration(0.3),
        tls=TlsConfig(ca_file=str(certs / "ca.pem"), cert_file=str(certs / "client.pem"),
                      key_file=str(certs / "client.key")),
        subscribe=(SubscribeConfig(topic=f"{topic}/{{device}}/{{metric}}", format="plain"),),
    )


def publish_tls(broker: Broker, certs: Path, topic: str, payload: str) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="tls-pub")
    client.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / "client.pem"),
                   keyfile=str(certs / "client.key"), cert_reqs=ssl.CERT_REQUIRED)
    client.username_pw_set("gw", "s3cret")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(15)
    client.disconnect()
    client.loop_stop()


def run(source: MqttSource) -> threading.Thread:
    thread = threading.Thread(target=source.run, daemon=True)
    thread.start()
    return thread


def test_mqtts_with_client_certificate_and_password_from_env(
    tls_broker: tuple[Broker, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker, certs = tls_broker
    monkeypatch.setenv("EDGE_TEST_MQTT_PASSWORD", "s3cret")
    ctx = make_context()
    source = MqttSource(tls_config(broker, certs, "env:EDGE_TEST_MQTT_PASSWORD", "secure"), ctx)
    thread = run(source)
    connects = ctx.telemetry.counter("mqtt", "connects", "outcome", base={"source": ctx.name})
    try:
        wait_until(lambda: connects.value("subscribed") >= 1, 20, "TLS session subscribed")
        publish_tls(broker, certs, "secure/dev1/temperature", "21.5")
        wait_until(lambda: len(ctx.ring) == 1, 20, "the reading over TLS")
        drained = ctx.ring.drain()
        assert list(drained.floats) == [21.5]
        assert ctx.series.series(drained.series_ids[0]).attributes == (("device.id", "dev1"),)
    finally:
        ctx.stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_wrong_password_is_counted_and_retried_not_fatal(tls_broker: tuple[Broker, Path]) -> None:
    broker, certs = tls_broker
    ctx = make_context()
    source = MqttSource(tls_config(broker, certs, "wrong", "denied"), ctx)
    thread = run(source)
    connects = ctx.telemetry.counter("mqtt", "connects", "outcome", base={"source": ctx.name})
    try:
        wait_until(lambda: connects.value("refused") >= 2, 20, "two refused attempts")
        assert thread.is_alive() and connects.value("ok") == 0
    finally:
        ctx.stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_missing_password_env_is_a_counted_fault(tls_broker: tuple[Broker, Path], monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    broker, certs = tls_broker
    monkeypatch.delenv("EDGE_TEST_MQTT_NOPE", raising=False)
    ctx = make_context()
    source = MqttSource(tls_config(broker, certs, "env:EDGE_TEST_MQTT_NOPE", "nopw"), ctx)
    thread = run(source)
    try:
        wait_until(lambda: "password KeyError" in caplog.text, 20, "the fault logged")
        assert thread.is_alive()
        assert "s3cret" not in caplog.text
    finally:
        ctx.stop.set()
        thread.join(10)
