"""Real edgecollect agents for the OpAMP tests: tests/support's AgentProcess, each in a work folder
of its own whose state dir comes from XDG_STATE_HOME (the config names none, so one remote config
can be served to many agents)."""

from __future__ import annotations

from pathlib import Path

from tests.support.agent import AgentProcess


def agent_config(endpoint: str, *, accept: bool = True, heartbeat: str = "1s", extra: str = "",
                 tls: str = "tls.insecure = true") -> str:
    """A config without a state_dir, for `opamp_agent`."""
    return (extra + '[sources.host]\ninterval = "1s"\n\n'
            f'[opamp]\nendpoint = "{endpoint}"\nheartbeat = "{heartbeat}"\n'
            f'accept_remote_config = {"true" if accept else "false"}\n{tls}\n'
            'headers = { Authorization = "Bearer opamp-literal-token" }\n')


def state_env(workdir: Path) -> dict[str, str | None]:
    """The environment that puts the state dir of an agent (or of an `edgecollect` command) under
    `workdir`: XDG_STATE_HOME, and no STATE_DIRECTORY from a systemd that may run the tests."""
    return {"XDG_STATE_HOME": str(workdir / "state"), "STATE_DIRECTORY": None}


def opamp_agent(workdir: Path, config_text: str) -> AgentProcess:
    """An agent (not started) running `config_text` from `workdir`/edgecollect.toml."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "edgecollect.toml"
    config.write_text(config_text)
    return AgentProcess(config, workdir / "state" / "edgecollect", workdir / "agent.log", env=state_env(workdir))
