"""TLS for the upstream: gRPC channel credentials, an ssl context for OTLP/HTTP, clear errors.

Trust is the system CA store unless `tls.ca_file` names a PEM bundle; `cert_file`/`key_file` add
a client certificate (mTLS); plaintext only with `tls.insecure = true`. A failed handshake is
reported as one sentence naming the endpoint and what the server certificate was checked against,
because "failed to connect to all addresses" alone sends people looking at firewalls.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from edgecollect.errors import UpstreamFault
from edgecollect.exporters.upstream import TlsConfig

if TYPE_CHECKING:  # only gRPC exporters ask for channel credentials; OTLP/HTTP never loads grpc
    import grpc

# Substrings of grpc-core / BoringSSL / OpenSSL errors that mean the handshake failed.
_TLS_MARKERS = ("ssl", "tls", "handshake", "certificate", "x509")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UpstreamFault(f"cannot read tls.{what} {path}: {exc.strerror or exc}") from exc


# Where distributions keep the OS trust store as one PEM bundle, after what OpenSSL reports.
_SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                   "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem")


def system_ca_bundle() -> str | None:
    """The OS trust store as a PEM file, or None. grpcio would otherwise trust only its own bundled
    roots, missing a company CA that was added to the gateway's system store."""
    paths = ssl.get_default_verify_paths()
    env = os.environ.get(paths.openssl_cafile_env or "SSL_CERT_FILE", "")
    for candidate in (env, paths.cafile, paths.openssl_cafile, *_SYSTEM_BUNDLES):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def grpc_credentials(tls: TlsConfig) -> grpc.ChannelCredentials | None:
    """Channel credentials, or None for a plaintext channel (tls.insecure)."""
    import grpc

    if tls.insecure:
        return None
    system = None if tls.ca_file else system_ca_bundle()
    if tls.ca_file:
        root: bytes | None = _read(tls.ca_file, "ca_file")
    else:
        root = _read(system, "ca_file (system store)") if system else None
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
    if tls.ca_file:
        return f"ca_file {tls.ca_file}"
    bundle = system_ca_bundle()
    return f"the system CA store ({bundle})" if bundle else "grpc's bundled CA roots"


def looks_like_tls_failure(details: str) -> bool:
    low = details.lower()
    return any(m in low for m in _TLS_MARKERS)


def tls_failure(endpoint: str, tls: TlsConfig, details: str) -> str:
    """The sentence logged when a handshake fails."""
    client = f"; client certificate {tls.cert_file}" if tls.cert_file else ""
    return (f"TLS handshake with {endpoint} failed: the server certificate was checked against "
            f"{trust_anchor(tls)}{client} ({details.strip()})")
