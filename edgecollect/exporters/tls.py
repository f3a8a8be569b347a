"""TLS for the upstream: gRPC channel credentials, an ssl context for OTLP/HTTP, clear errors.

Trust is the system CA store unless `tls.ca_file` names a PEM bundle; `cert_file`/`key_file` add
a client certificate (mTLS); plaintext only with `tls.insecure = true`. A failed handshake is
reported as one sentence naming the endpoint and what the server certificate was checked against,
because "failed to connect to all addresses" alone sends people looking at firewalls.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from edgecollect.errors import UpstreamFault
from edgecollect.exporters.base import TlsConfig

# Substrings of grpc-core / BoringSSL / OpenSSL errors that mean the handshake failed.
_TLS_MARKERS = ("ssl", "tls", "handshake", "certificate", "x509")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UpstreamFault(f"cannot read tls.{what} {path}: {exc.strerror or exc}") from exc


def grpc_credentials(tls: TlsConfig) -> grpc.ChannelCredentials | None:
    """Channel credentials, or None for a plaintext channel (tls.insecure)."""
    if tls.insecure:
        return None
    root = _read(tls.ca_file, "ca_file") if tls.ca_file else None
    key = _read(tls.key_file, "key_file") if tls.key_file else None
    chain = _read(tls.cert_file, "cert_file") if tls.cert_file else None
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)


def ssl_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """A verifying client context for OTLP/HTTP, or None for plain http (tls.insecure)."""
    if tls.insecure:
        return None
    try:
        ctx = ssl.create_default_context(cafile=tls.ca_file or None)
        if tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise UpstreamFault(f"cannot load TLS files (ca_file={tls.ca_file or '-'}, "
                            f"cert_file={tls.cert_file or '-'}): {exc}") from exc
    return ctx


def trust_anchor(tls: TlsConfig) -> str:
    return f"ca_file {tls.ca_file}" if tls.ca_file else "the system CA store"


def looks_like_tls_failure(details: str) -> bool:
    low = details.lower()
    return any(m in low for m in _TLS_MARKERS)


def tls_failure(endpoint: str, tls: TlsConfig, details: str) -> str:
    """The sentence logged when a handshake fails."""
    client = f"; client certificate {tls.cert_file}" if tls.cert_file else ""
    return (f"TLS handshake with {endpoint} failed: the server certificate was checked against "
            f"{trust_anchor(tls)}{client} ({details.strip()})")
