"""edgecollect: a minimal-footprint telemetry collector for edge and IoT gateways."""

__version__ = "0.1.0"
