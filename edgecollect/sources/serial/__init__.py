"""Serial sensors: SLF/1 firmware bridges, NMEA receivers and line-format devices on UART/USB.

`SerialSource(cfg, ctx).run()` owns one port; `SerialConfig` is its `[[sources.serial]]` table.
port.py opens and cuts lines, framing/ holds one parser per wire format.
"""

from edgecollect.sources.serial.config import SerialConfig
from edgecollect.sources.serial.source import SerialSource

__all__ = ["SerialConfig", "SerialSource"]
