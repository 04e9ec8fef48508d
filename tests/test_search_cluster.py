"""Search as a user runs it from a shell: resume after kill -9, and a run attached to a
`ray start --head` cluster whose trials show in the dashboard's HTTP API."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def tunekae(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "tunekae", *map(str, args)], env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def trial_results(out_dir: Path, arm: str) -> list[Path]:
    return list((out_dir / "ray" / arm).glob("*/result.json"))


@pytest.mark.xfail(strict=False, reason="known race, open on issue 4: when kill -9 lands between the Optuna "
                   "journal write and Tune's searcher checkpoint, the resumed search dies on "
                   "UpdateFinishedTrialError; passes when the kill lands elsewhere")
def test_resume_after_kill_9_keeps_finished_trials(tmp_path):
    out = tmp_path / "run"
    args = ["search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 6, "--epochs", 6,
            "--output", out, "--quiet", "--max-concurrent", 1]
    proc = tunekae(*args)
    arms = ["mlp_b2128", "kae_b2128"]
    deadline = time.time() + 240
    # wait until the first arm is finished and the second has finished trials of its own
    while time.time() < deadline and proc.poll() is None:
        done = (out / "arms" / f"{arms[0]}.csv").exists()
        finished = [p for p in trial_results(out, arms[1]) if p.stat().st_size and '"done": true' in p.read_text()]
        if done and len(finished) >= 2:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "search finished before it could be killed:\n" + proc.stdout.read()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first_arm = pd.read_csv(out / "arms" / f"{arms[0]}.csv")
    assert not (out / "results.csv").exists() or len(pd.read_csv(out / "results.csv")) < 12
    time.sleep(2)

    resumed = tunekae("search", "--output", out, "--resume")
    log, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, log
    assert f"{arms[0]} finished earlier; skipped" in log
    results = pd.read_csv(out / "results.csv")
    assert results.groupby("arm").size().to_dict() == {arms[0]: 6, arms[1]: 6}   # nothing lost, nothing rerun
    assert results["trial_id"].is_unique
    again = results[results["arm"] == arms[0]].sort_values("trial_id")
    assert list(again["trial_id"]) == sorted(first_arm["trial_id"])
    assert list(again["val_loss"].round(8)) == list(first_arm.sort_values("trial_id")["val_loss"].round(8))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_search_attached_to_a_cluster_shows_in_the_dashboard(tmp_path):
    """`ray start --head --block` in its own process group: stopping it ends only this cluster
    (`ray stop` would end every Ray cluster on the machine, a user's running search included)."""
    ray_bin = str(Path(sys.executable).parent / "ray")
    port, gcs_port = free_port(), free_port()
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--num-cpus", "2", "--dashboard-port", str(port),
                             "--dashboard-host", "127.0.0.1", "--include-dashboard", "true", "--disable-usage-stats",
                             "--port", str(gcs_port)],
                            env=ENV, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 180
        while True:                                  # the dashboard answers once the head is up
            assert head.poll() is None, "ray start --head failed:\n" + head.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=5):
                    break
            except OSError:
                assert time.time() < deadline, "the Ray dashboard never came up"
                time.sleep(1)
        out = tmp_path / "attached"
        proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 2, "--epochs", 2,
                       "--output", out, "--quiet", "--address", f"127.0.0.1:{gcs_port}")
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, log
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v0/actors?limit=1000", timeout=30) as r:
            body = json.loads(r.read())
        actors = body["data"]["result"]["result"]
        classes = [a.get("class_name") for a in actors]
        assert "ImplicitFunc" in classes, classes   # the search's trials ran as actors of this cluster
        assert len(pd.read_csv(out / "results.csv")) == 4
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        # `ray start` recorded this cluster as the machine's current one; leave no dead pointer
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if current.exists() and str(gcs_port) in current.read_text():
            current.unlink()
