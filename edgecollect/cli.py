"""Commands and exit codes; no pipeline logic lives here.

    edgecollect run [-c FILE]            run the agent (no file: built-in defaults); one per state_dir
    edgecollect check-config [--explain] FILE   exit 0 if valid, 2 with FILE:LINE: key: ... if not
    edgecollect status [--json] [-c F]   ask the running agent
    edgecollect spool ls | show ID | export --format parquet|arrow OUT   [-c FILE]
    edgecollect --version
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgecollect import __version__, footprint
from edgecollect.config import Config, load
from edgecollect.errors import ConfigError, SpoolFault
from edgecollect.format import SIGNALS

if TYPE_CHECKING:
    from edgecollect.runtime import Agent

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
log = logging.getLogger("edgecollect")


def _setup_logging(level: str) -> None:
    # Under systemd the journal adds its own timestamps; a bare "LEVEL message" stays readable there.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)


def _load_or_report(path: str | None) -> Config | None:
    try:
        return load(path)
    except ConfigError as exc:
        print(f"edgecollect: {exc}", file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    # The loader checks every value (types, ranges, cross-field rules) without building the
    # agent: a valid max_points of 10 million must not allocate its ring just to be checked.
    cfg = _load_or_report(args.file)
    if cfg is None:
        return EXIT_CONFIG
    print(f"{args.file}: ok")
    if args.explain:
        _explain(cfg)
    return EXIT_OK


def _explain(cfg: Config) -> None:
    """What each source's points go through (`check-config --explain`)."""
    from edgecollect.runtime import Agent

    names = [st.ctx.name for st in Agent(cfg).sources]
    if not cfg.processors:
        print("\n".join(f"{name}:\n  (no processors) -> ring" for name in names))
        return
    from edgecollect.processors import explain

    print(explain(cfg.processors, names))


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load_or_report(args.config)
    if cfg is None:
        return EXIT_CONFIG
    _setup_logging(cfg.agent.log_level)
    footprint.before_imports()  # before pyarrow loads (edgecollect/footprint.py)
    from edgecollect.statelock import StateDirLocked, StateLock

    # Before anything else touches the state_dir: a second agent would renumber and overwrite the
    # first one's batches and take over its status socket.
    lock = StateLock(cfg.state_dir())
    try:
        lock.acquire()
    except StateDirLocked as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except OSError as exc:
        log.error("cannot lock state_dir %s: %s", cfg.state_dir(), exc)
        return EXIT_FAILURE
    try:
        return _run_locked(cfg, args)
    finally:
        lock.release()


def _pinned_to(locked: Path) -> Callable[[Config], Agent]:
    """Agents for the supervisor, always in the state_dir this process locked.

    A reload that names another state_dir would leave the locked one and run unlocked in the new
    one; the change takes effect at the next start instead, and says so.
    """
    from edgecollect.runtime import Agent

    def make(cfg: Config) -> Agent:
        wanted = cfg.state_dir()
        if wanted != locked:
            log.error("state_dir changed to %s: it takes effect at the next start; this agent keeps %s (locked)",
                      wanted, locked)
            cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, state_dir=str(locked)))
        return Agent(cfg)

    return make


def _run_locked(cfg: Config, args: argparse.Namespace) -> int:
    from edgecollect.signals import Wakeup
    from edgecollect.supervisor import Supervisor

    wakeup = Wakeup()  # SIGTERM/SIGINT: stop; SIGHUP: reload; separate flags, stop always wins
    wakeup.install()
    try:
        return Supervisor(cfg, args.config, wakeup, _pinned_to(cfg.state_dir())).run()
    except SpoolFault as exc:
        log.error("%s", exc)
        return EXIT_FAILURE


def _state_dir(args: argparse.Namespace) -> Path | None:
    cfg = _load_or_report(getattr(args, "config", None))
    return None if cfg is None else cfg.state_dir()


def cmd_status(args: argparse.Namespace) -> int:
    from edgecollect.status import SOCKET_NAME, query
    from edgecollect.statusmodel import AgentStatus, StatusFormatError
    from edgecollect.statustext import render

    state_dir = _state_dir(args)
    if state_dir is None:
        return EXIT_CONFIG
    try:
        status = query(state_dir / SOCKET_NAME)
    except (OSError, ValueError) as exc:  # ValueError: an answer that is not JSON
        print(f"edgecollect: no running agent answers at {state_dir / SOCKET_NAME}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:  # the document as the agent sent it, whatever its version
        print(json.dumps(status, indent=2, sort_keys=True))
        return EXIT_OK
    try:
        print(render(AgentStatus.from_json(status)))
    except StatusFormatError as exc:
        print(f"edgecollect: {exc} (`edgecollect status --json` shows it as it is)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_spool(args: argparse.Namespace) -> int:
    from edgecollect import spoolfile, spooltool

    cfg = _load_or_report(getattr(args, "config", None))
    if cfg is None:
        return EXIT_CONFIG
    directory = cfg.state_dir() / "spool"
    largest = spoolfile.largest_batch(cfg.spool.max_size)  # a bigger file is damaged, and never read
    if args.spool_command == "ls":
        return spooltool.ls(directory, sys.stdout, largest)
    if args.spool_command == "show":
        return spooltool.show(directory, args.id, sys.stdout, largest)
    return spooltool.export(directory, args.format, Path(args.out), args.signal, sys.stdout, largest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecollect", description="Telemetry collector for edge gateways.")
    parser.add_argument("--version", action="version", version=f"edgecollect {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the agent")
    run.add_argument("-c", "--config", help="TOML config file (default: built-in defaults)")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    check.add_argument("--explain", action="store_true", help="print what each source's points go through")
    check.set_defaults(func=cmd_check_config)

    status = sub.add_parser("status", help="show the running agent's state")
    status.add_argument("--json", action="store_true")
    status.add_argument("-c", "--config")
    status.set_defaults(func=cmd_status)

    spool = sub.add_parser("spool", help="inspect or export the spool")
    spool_sub = spool.add_subparsers(dest="spool_command", required=True)
    ls = spool_sub.add_parser("ls", help="list spooled batches")
    ls.add_argument("-c", "--config")
    show = spool_sub.add_parser("show", help="print one batch")
    show.add_argument("id", help="batch id (as listed by ls)")
    show.add_argument("-c", "--config")
    export = spool_sub.add_parser("export", help="write all spooled batches to one file")
    export.add_argument("--format", choices=("parquet", "arrow"), required=True)
    export.add_argument("--signal", choices=SIGNALS, default="metrics")
    export.add_argument("out")
    export.add_argument("-c", "--config")
    spool.set_defaults(func=cmd_spool)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
