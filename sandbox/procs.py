"""Start the sandbox's daemons detached, remember them, and stop exactly those.

A pid alone may be reused by another program after a crash, so each record also keeps the
process's start time from /proc; `stop` signals only a process that still matches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import SandboxError


@dataclass(frozen=True)
class Daemon:
    name: str
    pid: int
    started: int  # jiffies since boot, field 22 of /proc/<pid>/stat
    log: str


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(daemon: Daemon) -> bool:
    return _start_time(daemon.pid) == daemon.started and not _is_zombie(daemon.pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class Registry:
    """The daemons of one sandbox, persisted in its state directory."""

    def __init__(self, state: Path):
        self.path = state / "daemons.json"
        self.logs = state / "logs"

    def load(self) -> list[Daemon]:
        try:
            return [Daemon(**entry) for entry in json.loads(self.path.read_text())]
        except (OSError, ValueError, TypeError):
            return []

    def _save(self, daemons: list[Daemon]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps([asdict(d) for d in daemons], indent=1))

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Daemon:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # survives `up` returning; `down` signals its group
                )
            except OSError as e:
                raise SandboxError(f"cannot start {name} ({command[0]}): {e}") from e
        daemon = Daemon(name, process.pid, _start_time(process.pid) or 0, str(log))
        self._save([d for d in self.load() if d.name != name] + [daemon])
        return daemon

    def stop_all(self, grace: float = 10.0) -> list[str]:
        """Stop every recorded daemon, newest first; return the names that were running."""
        stopped = []
        for daemon in reversed(self.load()):
            if alive(daemon):
                stop(daemon, grace)
                stopped.append(daemon.name)
        self._save([])
        return stopped


def stop(daemon: Daemon, grace: float) -> None:
    try:
        os.killpg(daemon.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and alive(daemon):
        time.sleep(0.1)
    if alive(daemon):
        try:
            os.killpg(daemon.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    hint: str = "",
    give_up: Callable[[], str | None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll `ready` with exponential backoff until it is true or `timeout` seconds pass.

    `give_up` returns a reason to stop early (say, the daemon died) or None.
    """
    deadline = clock() + timeout
    delay = 0.05
    while True:
        if ready():
            return
        if reason := give_up():
            raise SandboxError(f"{what} failed: {reason}{' — ' + hint if hint else ''}")
        if clock() >= deadline:
            raise SandboxError(f"{what} not ready after {timeout:.0f}s{' — ' + hint if hint else ''}")
        sleep(delay)
        delay = min(delay * 2, 1.0)
