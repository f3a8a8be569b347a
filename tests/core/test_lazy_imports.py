"""A feature that is not configured costs nothing: the real agent (`edgecollect run`) in a subprocess,
its sys.modules read once it has done real work (a batch spooled, or a batch delivered to the Go sink).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.sink import Sink, go_sink  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]

# Runs the agent's own entry point; a watcher thread writes sys.modules when the test says so.
PROBE = """
import os, signal, sys, threading, time
from pathlib import Path
trigger, dump = Path(sys.argv[2]), Path(sys.argv[3])
def watch():
    while not trigger.exists():
        time.sleep(0.05)
    dump.write_text("\\n".join(sorted(m for m, v in list(sys.modules.items()) if v is not None)))
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watch, daemon=True).start()
from edgecollect.cli import main
sys.exit(main(["run", "-c", sys.argv[1]]))
"""

NEVER_UNLESS_CONFIGURED = {
    "mqtt": ("paho", "edgecollect.sources.mqtt"),
    "serial": ("serial", "edgecollect.sources.serial"),
    "modbus": ("pymodbus", "edgecollect.sources.modbus"),
    "parquet": ("pyarrow.parquet",),
    "otlp_http": ("http.client", "urllib.request", "email.utils", "gzip"),
    "numpy, cloudpickle (never used)": ("numpy", "cloudpickle"),
}
UPSTREAM = {
    "grpc": ("grpc", "google.protobuf", "opentelemetry.proto", "edgecollect.exporters"),
    "flush-path compute": ("pyarrow.compute",),
}


def modules_after(tmp: Path, config: str, ready: Callable[[Path], bool]) -> set[str]:
    conf, trigger, dump = tmp / "agent.toml", tmp / "trigger", tmp / "modules.txt"
    conf.write_text(config)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", PROBE, str(conf), str(trigger), str(dump)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ready(tmp / "state"):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the agent did no work within 120 s"
            time.sleep(0.1)
        trigger.touch()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return set(dump.read_text().split())


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in sorted(modules) if any(m == n or m.startswith(n + ".") for n in names)]


def spooled(state: Path) -> bool:
    return any((state / "spool").glob("*.ecb"))


def test_default_config_imports_no_feature_it_does_not_use(tmp_path: Path) -> None:
    modules = modules_after(tmp_path, f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[batch]\nflush_interval = "1s"\n',
                            spooled)
    assert {"pyarrow", "psutil", "edgecollect.batch", "edgecollect.sources.host"} <= modules  # it did run
    for feature, names in {**NEVER_UNLESS_CONFIGURED, **UPSTREAM}.items():
        assert loaded(modules, names) == [], feature


def test_otap_only_config_imports_grpc_but_no_other_feature(tmp_path: Path, go_sink: Sink) -> None:  # noqa: F811
    config = (f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[batch]\nflush_interval = "1s"\n'
              f'[upstream]\nendpoint = "{go_sink.grpc_address}"\ntls = {{ insecure = true }}\n')
    modules = modules_after(tmp_path, config, lambda _state: bool(go_sink.records("metrics")))
    assert loaded(modules, ("grpc", "edgecollect.exporters.otap")) != []  # the exporter did run
    for feature, names in NEVER_UNLESS_CONFIGURED.items():
        assert loaded(modules, names) == [], feature


CHECK_CONFIG = """
import sys
from edgecollect.cli import main
code = main(["check-config", sys.argv[1]])
print(" ".join(sorted(m for m, v in list(sys.modules.items()) if v is not None)))
sys.exit(code)
"""


def test_check_config_imports_no_library_of_the_data_path(tmp_path: Path) -> None:
    # A config that turns every heavy feature on: checking it still loads none of their libraries.
    conf = tmp_path / "agent.toml"
    conf.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[sources.host]\ninterval = "5s"\n'
                    '[upstream]\nendpoint = "127.0.0.1:4317"\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", CHECK_CONFIG, str(conf)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    modules = set(done.stdout.split())
    assert "edgecollect.config" in modules  # it did check
    for names in (("psutil", "edgecollect.sources.host"), ("pyarrow",), ("grpc", "google.protobuf")):
        assert loaded(modules, names) == [], names


def test_host_metrics_off_imports_no_psutil(tmp_path: Path) -> None:
    config = (f'[agent]\nstate_dir = "{tmp_path / "state"}"\nself_interval = "1s"\n[batch]\nflush_interval = "1s"\n'
              '[sources.host]\nenabled = false\n')
    modules = modules_after(tmp_path, config, spooled)
    assert "edgecollect.batch" in modules  # it did run
    assert loaded(modules, ("psutil", "edgecollect.sources.host")) == []
