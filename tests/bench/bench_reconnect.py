"""What closing an idle gRPC connection costs on the wire (issue 11): bytes per send with the
connection kept open vs closed after each send (`upstream.close_idle_after` below `send_interval`).

    python -m tests.bench.bench_reconnect [--sends 20] [--protocols otap,otlp_grpc]

Each send is one minute of the host profile of bench_wire (97 series every 10 s, six cuts coalesced
as the forwarder does at the default send_interval of 60 s), given to the real exporter and
acknowledged by the real Go sink, through a TCP relay that counts the bytes both ways. Plaintext and
TLS (a P-256 CA and server certificate made here: a typical RSA chain from a public CA adds 2-4 kB
to every full handshake). Bytes are TCP payload; each connection also costs about 7 TCP/IP packets
to open and close (~0.4 kB of headers), listed apart. Figures only; nothing asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import random
import socket
import tempfile
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgecollect.exporters.contracts import Delivery, Outgoing
from edgecollect.exporters.registry import make_exporter
from edgecollect.exporters.upstream import TlsConfig, UpstreamConfig
from edgecollect.telemetry import Telemetry
from tests.bench.bench_suite import machine
from tests.bench.bench_wire import _cadence, host_dataset
from tests.support.sink import Sink

TCP_OPEN_CLOSE_B = 7 * 60  # SYN, SYN-ACK, ACK, FIN, ACK, FIN, ACK with IPv4+TCP(+options) headers


class Relay:
    """127.0.0.1:port -> target, counting payload bytes each way and connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.up = self.down = self.connections = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()


def make_pki(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) for localhost."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def run(protocol: str, tls: bool, close: bool, sends: int, directory: Path) -> tuple[float, float, int, float]:
    """(B per send, B per point, connections, CPU ms per send of this process) for `sends` one-minute
    sends. The CPU includes the relay's (the same work either way) and grpc's threads."""
    rng = random.Random(42)
    ds = host_dataset(rng)
    batches = _cadence(list(ds.batches(sends * 60, 10, rng)), 6)
    points = sum(b.num_rows for b in batches)
    ca, cert, key = make_pki(directory) if tls else (None, None, None)
    sink = Sink(directory / f"{protocol}-{tls}-{close}.jsonl", tls_cert=cert, tls_key=key).start()
    host, port = sink.grpc_address.removeprefix("http://").removeprefix("https://").rsplit(":", 1)
    relay = Relay((host, int(port)))
    cfg = UpstreamConfig(f"localhost:{relay.port}", protocol=protocol,  # type: ignore[arg-type]
                         tls=TlsConfig(ca_file=str(ca)) if tls else TlsConfig(insecure=True),
                         close_idle_after=0.0 if close else 3600.0)
    woken = threading.Event()
    exporter = make_exporter(cfg, Telemetry(), woken.set)
    cpu = time.process_time()
    try:
        for i, batch in enumerate(batches, 1):
            exporter.submit(Outgoing(i, "metrics", batch, batch.num_rows))
            verdicts: list[Delivery] = []
            deadline = time.monotonic() + 30
            while not any(d.spool_id == i for d in verdicts):
                assert time.monotonic() < deadline, "no verdict in 30 s"
                woken.wait(0.2)
                woken.clear()
                verdicts += exporter.poll()
            assert [d.outcome for d in verdicts if d.spool_id == i] == ["ok"], verdicts
            while close and exporter.wake_at() is not None:  # as the forwarder would: poll until closed
                assert time.monotonic() < deadline, "the idle connection was not closed in 30 s"
                woken.wait(max(0.0, min(0.2, (exporter.wake_at() or 0) - time.monotonic())))
                woken.clear()
                exporter.poll()
        cpu = time.process_time() - cpu
    finally:
        exporter.close(2.0)
        time.sleep(0.3)
        relay.close()
        sink.stop()
    total = relay.up + relay.down + relay.connections * TCP_OPEN_CLOSE_B
    return total / sends, total / points, relay.connections, cpu * 1000 / sends


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sends", type=int, default=20)
    ap.add_argument("--protocols", default="otap,otlp_grpc")
    args = ap.parse_args()
    info = machine()
    print(f"bench_reconnect on {info['cpu_model']} ({info['cpus']} cores), Python {info['python']}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.sends} one-minute sends of the host profile\n")
    print("| protocol | transport | connection | B per send | B/point | connections | MB/day at 1 send/min "
          "| CPU ms per send |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in args.protocols.split(","):
            for tls in (False, True):
                for close in (False, True):
                    per_send, per_point, conns, cpu_ms = run(protocol, tls, close, args.sends, Path(tmp))
                    print(f"| {protocol} | {'TLS' if tls else 'plaintext'} | "
                          f"{'closed after each send' if close else 'kept open'} | {per_send:,.0f} | "
                          f"{per_point:.2f} | {conns} | {per_send * 1440 / 1e6:.2f} | {cpu_ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
