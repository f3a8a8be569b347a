"""Exporters: the upstream wire (OTAP encoder and streams, OTLP fallback, forwarder)."""
