"""daemon_proc.py -- what the integration tests that start the daemon themselves share: the
wait for a port file the daemon writes once it listens, its stderr as text, one metric out of
a /metrics page, and stopping it with a check for sanitizer reports.

Python 3.11 standard library only.
"""

from __future__ import annotations

import subprocess
import time
from typing import Callable, IO


def read_port_file(proc: subprocess.Popen, path: str, stderr: Callable[[], str],
                   timeout: float = 15.0) -> int:
    """The port in path, once the daemon (proc) has written it; fails if it exits or never
    writes it within timeout seconds, quoting its stderr."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("daemon exited: " + stderr())
        try:
            with open(path) as f:
                return int(f.read())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError("no port file: " + stderr())


def log_text(log: IO[str]) -> str:
    """Everything written so far to the open log file (the daemon's stderr)."""
    log.flush()
    with open(log.name) as f:
        return f.read()


def metric_value(text: str, name: str) -> float:
    """The value of the unlabelled metric name in a Prometheus text page."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric " + name)


def stop(proc: subprocess.Popen, log: IO[str]) -> str:
    """SIGTERM (SIGKILL after 20 s), then the daemon's stderr, which must hold no sanitizer
    report; closes log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err = log_text(log)
    log.close()
    assert "Sanitizer" not in err and "runtime error" not in err, err
    return err
