"""Load generators for the chaos scenarios: an MQTT QoS 1 publisher of numbered values and an SLF/1
writer on a pty, each on its own thread, each knowing exactly what it got out of the door."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from edgecollect.sources.serial.framing import slf1
from tests.chaos.harness import total
from tests.sources.mqtt.mqtt_support import Publisher, subscribe_once
from tests.sources.serial.serial_helpers import Pty  # a pty pair with a stable symlink, unpluggable
from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.wait import wait_until

__all__ = ["MqttLoad", "Pty", "SerialLoad"]


class MqttLoad:
    """Publishes 0, 1, 2, ... at QoS 1 to `<prefix>/meter/v` at `rate` per second.

    `acked()` is the set the broker acknowledged (PUBACK): the agent must deliver every one of them.
    A persistent session for the agent's client id exists before the first message, so the broker
    queues for it while the agent is dead.
    """

    def __init__(self, broker: Broker, agent_client_id: str, rate: float) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.prefix = f"chaos{self.tag}"
        self.topic_template = f"{self.prefix}/{{device}}/{{metric}}"
        self.broker = broker
        self.rate = rate
        subscribe_once(broker.host, broker.port, agent_client_id, f"{self.prefix}/+/+", 1)
        self.pub = Publisher(broker.host, broker.port, f"pub-{self.tag}")
        self._infos: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-load", daemon=True)

    def start(self) -> MqttLoad:
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while i < due and not self._stop.is_set():
                self._infos.append(self.pub.publish(f"{self.prefix}/meter/v", str(i)))
                i += 1
            self._stop.wait(0.01)

    def stop(self, settle_s: float = 30.0) -> None:
        """Stop publishing and give paho a bounded time to get PUBACKs for what is in flight."""
        self._stop.set()
        self._thread.join(10)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and not all(_acked(info) for info in self._infos if info.rc == 0):
            time.sleep(0.1)

    def acked(self) -> set[int]:
        return {i for i, info in enumerate(self._infos) if _acked(info)}

    def sent(self) -> int:
        return len(self._infos)

    def close(self) -> None:
        self._stop.set()
        self.pub.close()


def _acked(info: Any) -> bool:
    """PUBACK received. A publish refused while disconnected (rc != 0) is not counted as published,
    even though paho may still send it after reconnecting (it then arrives as an extra)."""
    try:
        return bool(info.is_published())
    except (RuntimeError, ValueError):
        return False


class SerialLoad:
    """Writes SLF/1 frames `n=0, 1, 2, ...` to a pty at `rate` per second, never blocking.

    A pty whose reader is gone (agent killed, port unplugged) fills up; a frame that does not fit is
    not written and not counted, so `written` is exactly what reached the line.
    """

    def __init__(self, link: Path, rate: float) -> None:
        self.pty = Pty(link)
        self.pty.plug()
        os.set_blocking(self.pty.master, False)
        self.rate = rate
        self.written: list[int] = []
        self.paused = threading.Event()
        self._lock = threading.Lock()
        self._n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serial-load", daemon=True)

    def start(self) -> SerialLoad:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(1.0 / self.rate):
            if self.paused.is_set():
                continue
            with self._lock:
                frame = slf1.encode("D", "chaos-1", self._n, self._n * 10, [("n", str(self._n))])
                try:
                    if self.pty.master >= 0 and os.write(self.pty.master, frame) == len(frame):
                        self.written.append(self._n)
                except (BlockingIOError, OSError):
                    pass
                self._n += 1

    def unplug(self) -> None:
        with self._lock:
            self.pty.unplug()

    def plug(self) -> None:
        with self._lock:
            self.pty.plug()
            os.set_blocking(self.pty.master, False)

    def resync(self) -> None:
        """The agent drops the first (maybe partial) line after it opens a port: give it an empty one."""
        with self._lock:
            os.write(self.pty.master, b"\r\n")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def close(self) -> None:
        self.stop()
        if self.pty.master >= 0:
            self.pty.unplug()


def start_loads(agent: AgentProcess, serial: SerialLoad, mqtt: MqttLoad) -> None:
    """Once the agent is up and has its serial port open, start both loads from a clean frame edge."""
    agent.wait_up()
    wait_until(lambda: total(agent.counter("edgecollect.serial.port_opens")) >= 1, 30, "the serial port opened")
    serial.resync()
    serial.paused.clear()
    mqtt.start()
    serial.start()
