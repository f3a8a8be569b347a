"""The TLS tests reuse the exporters' throwaway PKI (a CA, server and client certificates)."""

from tests.exporters.test_tls import pki

__all__ = ["pki"]
