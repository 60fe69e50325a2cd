"""kill -9 of `wf run` mid-run on the embedded SQLite default loses nothing and repeats no
finished action: running the same command again resumes the run to completion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[1] / "fixtures" / "workflows" / "crashable"
WF = Path(sys.executable).parent / "wf"


def _wait_for(predicate: object, deadline_s: float, what: str) -> None:
    assert callable(predicate)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)  # polling a file another process writes, with a deadline
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_mid_run_then_rerun_resumes_without_repeating_actions(tmp_path: Path) -> None:
    log, release = tmp_path / "executions.log", tmp_path / "release"
    env = {**os.environ, "WF_TEST_LOG": str(log), "WF_TEST_RELEASE": str(release),
           "WF_ENGINE_URL": f"sqlite:///{tmp_path / 'wf.db'}"}
    command = [str(WF), "run", str(WORKFLOW), "--input", "{}", "--json"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: log.exists() and "blocker started" in log.read_text(), 60,
                  "the blocking action to start")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    release.touch()
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming unfinished run" in second.stderr
    lines = log.read_text().splitlines()
    executed = [line.split()[0] for line in lines if " executed " in line]
    assert executed == ["first", "second", "blocker", "third"]
    assert sum(1 for line in lines if line.startswith("blocker started")) == 2
