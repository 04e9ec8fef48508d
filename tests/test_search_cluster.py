"""Search as a user runs it from a shell: resume after kill -9, and a run attached to a two-node
`ray start` cluster with token authentication, whose trials show in the dashboard's HTTP API."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def tunekae(*args, env=ENV):
    return subprocess.Popen([sys.executable, "-m", "tunekae", *map(str, args)], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout: float) -> str:
    """The search's output once it exits; a search still running after `timeout` is killed
    (with its Ray) and the test fails with what it printed, rather than leaving it behind."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the search still ran after {timeout} s:\n{proc.communicate()[0]}")


def test_an_address_where_no_cluster_answers_exits_2_at_once(tmp_path):
    # ray.init alone retries such an address for many minutes
    out = tmp_path / "run"
    started = time.time()
    proc = tunekae("search", "--space", "kae_vs_mlp", "--address", "127.0.0.1:1", "--output", out)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, text
    assert "cannot attach to a Ray cluster at 127.0.0.1:1" in text and "ray start --head" in text
    assert "Traceback" not in text and not out.exists()
    assert time.time() - started < 60


def test_address_auto_naming_a_cluster_that_is_gone_exits_2(tmp_path):
    # `ray start` records its address in <ray temp dir>/ray_current_cluster; after the head is
    # killed with -9 the file stays, and ray.init("auto") retries that address for many minutes
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
    env = {k: v for k, v in ENV.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "run"
    proc = tunekae("search", "--space", "kae_vs_mlp", "--address", "auto", "--output", out,
                   env={**env, "RAY_TMPDIR": str(tmp_path)})
    try:
        text, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, text
    assert "cannot attach to a Ray cluster at auto (127.0.0.1:1, the last `ray start` here" in text
    assert "`ray stop`" in text and "Traceback" not in text and not out.exists()


def test_resume_after_kill_9_keeps_finished_trials(tmp_path):
    out = tmp_path / "run"
    args = ["search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 6, "--epochs", 6,
            "--output", out, "--quiet", "--max-concurrent", 1]
    proc = tunekae(*args)
    arms = ["mlp_b2128", "kae_b2128"]
    deadline = time.time() + 240
    # wait until the first arm is finished and the second has ended trials of its own: one trial
    # at a time, so when its third trial has started (and written its log), two have ended
    while time.time() < deadline and proc.poll() is None:
        done = (out / "arms" / f"{arms[0]}.csv").exists()
        if done and len(list((out / "trial_logs" / arms[1]).glob("*.jsonl"))) >= 3:
            break
        time.sleep(0.05)
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
    assert results.groupby("arm").size().to_dict() == {arms[0]: 6, arms[1]: 6}, log   # nothing lost, nothing rerun
    assert results["trial_id"].is_unique
    again = results[results["arm"] == arms[0]].sort_values("trial_id")
    assert list(again["trial_id"]) == sorted(first_arm["trial_id"])
    assert list(again["val_loss"].round(8)) == list(first_arm.sort_values("trial_id")["val_loss"].round(8))
    second = results[results["arm"] == arms[1]]
    assert sorted(second["study_trial"]) == list(range(6)), log       # one Optuna trial per Tune trial
    for arm in arms:
        assert _study_states(out, arm) == ["COMPLETE"] * 6, (arm, log)


def test_ctrl_c_stops_the_search_and_resume_finishes_it(tmp_path):
    """Tune catches Ctrl-C and returns from fit() as if the arm had ended: the search must stop
    there (exit 130, the arm not marked finished, no later arm started) and --resume finish it."""
    import re
    out = tmp_path / "run"
    arms = ["mlp_b2128", "kae_b2128"]
    proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 8, "--epochs", 10,
                   "--max-concurrent", 1, "--output", out, "--quiet")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and len(list((out / "trial_logs").glob("*/*.jsonl"))) < 3:
        time.sleep(0.1)              # three trials started: the first arm is under way
    assert proc.poll() is None, "search finished before it could be interrupted:\n" + proc.stdout.read()
    os.killpg(proc.pid, signal.SIGINT)   # what Ctrl-C in a terminal does
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, log
    stopped = re.findall(r"tunekae: (\w+) interrupted; continue with: .* --resume", log)
    assert len(stopped) == 1 and stopped[0] in arms, log
    later = arms[arms.index(stopped[0]) + 1:]
    assert not (out / "arms" / f"{stopped[0]}.csv").exists()
    assert not any((out / "ray" / arm).exists() for arm in later)   # no later arm started
    # the half-done search is not taken for a results dir: both commands point at --resume
    for command in (["confirm", out], ["pareto", out]):
        run = subprocess.run([sys.executable, "-m", "tunekae.analysis" if command[0] == "pareto" else "tunekae",
                              *map(str, command)], env=ENV, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and "has not finished" in run.stderr, run.stderr
        assert f"python -m tunekae search --output {out} --resume" in run.stderr

    resumed = tunekae("search", "--output", out, "--resume")
    log, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, log
    results = pd.read_csv(out / "results.csv")
    assert results.groupby("arm").size().to_dict() == {arm: 8 for arm in arms}
    for arm in arms:
        assert sorted(results.loc[results["arm"] == arm, "study_trial"]) == list(range(8))
        assert _study_states(out, arm) == ["COMPLETE"] * 8


def _study_states(out: Path, arm: str) -> list[str]:
    import optuna
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "studies" / f"{arm}.journal")))
    return [t.state.name for t in optuna.load_study(study_name=arm, storage=storage).trials]


def _saved_state(arm_dir: Path) -> dict[str, bytes] | None:
    """Tune's saved experiment state (the files beside the trial folders), if the files are
    whole and from one save: Tune copies them into place one by one, and a state caught
    mid-copy is the case of test_resume_when_tunes_saved_state_is_damaged, not of this race."""
    from tunekae.tune_state import problems
    files = {p.name: p.read_bytes() for p in arm_dir.glob("*") if p.is_file() and not p.name.startswith(".")}
    if problems(files)[1]:             # checked as read (Tune may write on meanwhile)
        return None                    # not written yet, or caught mid-copy
    return files


def _terminated(state: dict[str, bytes]) -> int:
    data = json.loads(next(v for k, v in state.items() if k.startswith("experiment_state")))
    return sum(json.loads(t[0])["status"] == "TERMINATED" for t in data["trial_data"])


def test_resume_when_the_optuna_journal_is_ahead_of_tunes_saved_state(tmp_path):
    """The kill -9 race, made certain: Tune's saved state is rewound to a moment when the arm was
    part done, while the Optuna journal and the trial logs hold every finished trial. The resumed
    search must neither fail nor train any finished trial again."""
    out = tmp_path / "run"
    arm = "mlp_b2128"
    # 15 epochs: trials of ~0.5 s (warm trainers start them at once), so that Tune saves its
    # state several times while the arm is part done
    proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 6, "--epochs", 15, "--no-asha",
                   "--max-concurrent", 1, "--output", out, "--quiet", env={**ENV, "TUNE_GLOBAL_CHECKPOINT_S": "0.2"})
    snapshot = None
    while proc.poll() is None and snapshot is None:
        state = _saved_state(out / "ray" / arm) if (out / "ray" / arm).exists() else None
        if state and 1 <= _terminated(state) < 6:
            snapshot = state
        time.sleep(0.02)
    log, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, log
    assert snapshot is not None, "the arm finished before Tune saved a part-done state"
    first = pd.read_csv(out / "results.csv")
    first = first[first["arm"] == arm].set_index("study_trial").sort_index()

    for path in (out / "ray" / arm).glob("*"):            # rewind Tune to the snapshot
        if path.is_file():
            path.unlink()
    for name, data in snapshot.items():
        (out / "ray" / arm / name).write_bytes(data)
    (out / "arms" / f"{arm}.csv").unlink()

    resumed = tunekae("search", "--output", out, "--resume")
    log = finish(resumed, timeout=400)
    assert resumed.returncode == 0, log
    assert "saved state is damaged" not in log, log
    again = pd.read_csv(out / "results.csv")
    again = again[again["arm"] == arm].set_index("study_trial").sort_index()
    assert list(again.index) == list(range(6)) and (again["status"] == "ok").all()
    # the same results, and the same measured training seconds: replayed from the logs, not retrained
    assert list(again["val_loss"]) == list(first["val_loss"])
    assert list(again["train_seconds"]) == list(first["train_seconds"])
    assert _study_states(out, arm) == ["COMPLETE"] * 6


# a file cut short takes the same way as an empty one (test_tune_state.py tells them apart)
@pytest.mark.parametrize("victim, harm", [("searcher-state", "empty"), ("experiment_state", "a save behind")])
def test_resume_when_tunes_saved_state_is_damaged(tmp_path, victim, harm):
    """A kill -9 while Tune copies its saved state into place leaves a file empty or cut short,
    or whole files from two saves. Tune's own restore then only logs an error and waited 600 s
    for a trial. The resumed search sets that state aside (nothing deleted) and runs the arm
    again from its Optuna journal and trial logs: every finished trial (ASHA stops some of
    them early) replays, none trains again, none is added."""
    out = tmp_path / "run"
    arm = "mlp_b2128"
    proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 3, "--epochs", 3,
                   "--output", out, "--quiet")
    log = finish(proc, timeout=400)
    assert proc.returncode == 0, log
    first = pd.read_csv(out / "results.csv")
    first = first[first["arm"] == arm].set_index("study_trial").sort_index()
    (out / "arms" / f"{arm}.csv").unlink()          # the kill came before the arm was recorded as done
    state = next((out / "ray" / arm).glob(f"{victim}-*"))
    whole = state.read_bytes()
    if harm == "a save behind":                     # as saved before the last trial was created
        saved = json.loads(whole)
        saved["trial_data"] = saved["trial_data"][:-1]
        harmed = json.dumps(saved).encode()
    else:
        harmed = b"" if harm == "empty" else whole[:len(whole) // 2]
    state.write_bytes(harmed)

    resumed = tunekae("search", "--output", out, "--resume")
    log = finish(resumed, timeout=400)
    assert resumed.returncode == 0, log
    if harm == "a save behind":
        assert f"tunekae: {arm}: Tune's saved state is out of step (search_gen_state-" in log, log
        assert "counts 3 trials" in log and "has 2" in log, log
    else:
        assert f"tunekae: {arm}: Tune's saved state is damaged ({state.name} ({harm}" in log, log
    assert "Failed to restore" not in log, log
    aside = list((out / "ray" / arm).glob("damaged-state-*"))
    assert len(aside) == 1, aside
    kept = {p.name for p in aside[0].iterdir()}                # every state file, none deleted
    assert {state.name, "tuner.pkl"} <= kept and any(n.startswith("search_gen_state") for n in kept), kept
    assert (aside[0] / state.name).read_bytes() == harmed
    again = pd.read_csv(out / "results.csv")
    assert len(again[again["arm"] == "kae_b2128"]) == 3   # the other arm, finished, untouched
    again = again[again["arm"] == arm].set_index("study_trial").sort_index()
    assert list(again.index) == [0, 1, 2] and (again["status"] == "ok").all()
    assert list(again["val_loss"]) == list(first["val_loss"])           # replayed from the trial logs,
    assert list(again["train_seconds"]) == list(first["train_seconds"])  # not trained again
    assert _study_states(out, arm) == ["COMPLETE"] * 3                  # no trial added to the study


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_search_attached_to_a_two_node_cluster_shows_in_the_dashboard(tmp_path):
    """A head and a second node (one CPU each, both on this machine), and README's way under
    Ray's own defaults: once ~/.ray/auth_token exists (a first local run
    writes it), `ray start --head` turns token authentication on, `--address auto` finds the
    token, an explicit address does not send it, and the dashboard's API wants it. HOME is a
    fresh folder, so the user's own token is never read or written.
    `ray start --head --block` runs in its own process group: stopping it ends only this cluster
    (`ray stop` would end every Ray cluster on the machine, a user's running search included).
    With one trial slot per node the search puts a trial and a warm trainer on each node, and
    each trial is trained by the warm trainer beside it."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    token = secrets.token_hex(32)
    (home / ".ray" / "auth_token").write_text(token)
    env = {**{k: v for k, v in ENV.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}, "HOME": str(home),
           # a job's `python` is the one on the head's PATH: this environment's, as for a user in it
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{ENV.get('PATH', '')}"}
    authorized = {"Authorization": f"Bearer {token}"}
    ray_bin = str(Path(sys.executable).parent / "ray")
    port, gcs_port = free_port(), free_port()
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--num-cpus", "1", "--dashboard-port", str(port),
                             "--dashboard-host", "127.0.0.1", "--include-dashboard", "true", "--disable-usage-stats",
                             "--port", str(gcs_port)],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    nodes = [head]
    node_temp = tempfile.mkdtemp(prefix="ray-node-")   # short: Ray's socket paths live under it
    api = f"http://127.0.0.1:{port}/api"

    def get(url: str) -> list:   # a list from the dashboard's state API
        with urllib.request.urlopen(urllib.request.Request(url, headers=authorized), timeout=30) as r:
            return json.loads(r.read())["data"]["result"]["result"]
    try:
        deadline = time.time() + 180
        while True:                                  # the dashboard answers once the head is up
            assert head.poll() is None, "ray start --head failed:\n" + head.stdout.read()
            try:
                with urllib.request.urlopen(urllib.request.Request(f"{api}/version", headers=authorized), timeout=5):
                    break
            except OSError:
                assert time.time() < deadline, "the Ray dashboard never came up"
                time.sleep(1)
        # a node joining by address sends the token only with RAY_AUTH_MODE=token (README). Its
        # own temp dir, as on a machine of its own: nodes sharing one unpack a job's working_dir
        # to the same folder, and the first node done with it deletes it under the others.
        nodes.append(subprocess.Popen([ray_bin, "start", "--address", f"127.0.0.1:{gcs_port}", "--block",
                                       "--num-cpus", "1", "--disable-usage-stats", "--temp-dir", node_temp],
                                      env={**env, "RAY_AUTH_MODE": "token"}, start_new_session=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        while len(get(f"{api}/v0/nodes?filter_keys=state&filter_predicates=%3D&filter_values=ALIVE")) < 2:
            assert nodes[1].poll() is None, "the second node failed:\n" + nodes[1].stdout.read()
            assert time.time() < deadline, "the second node never joined"
            time.sleep(1)
        with pytest.raises(urllib.error.HTTPError) as refused:   # token authentication is on
            urllib.request.urlopen(f"{api}/v0/actors", timeout=30)
        assert refused.value.code == 401
        out = tmp_path / "attached"
        # an explicit address sends no token unless RAY_AUTH_MODE=token: ray.init alone says
        # only "Failed to connect", after 20 s of retries that each log a C++ warning; the search
        # asks the GCS itself first
        proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 2, "--epochs", 2,
                       "--output", out, "--quiet", "--address", f"127.0.0.1:{gcs_port}", env=env)
        log = finish(proc, timeout=180)
        assert proc.returncode == 2, log
        assert f"cannot attach to a Ray cluster at 127.0.0.1:{gcs_port}: it uses token authentication" in log
        assert "sent no token" in log and "RAY_AUTH_MODE=token" in log and "Traceback" not in log
        assert "Failed to get cluster ID" not in log
        assert not out.exists()
        # README's way: --address auto finds the cluster `ray start` recorded (it writes the
        # record a few seconds after the dashboard answers)
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        while not (current.exists() and current.read_text().endswith(f":{gcs_port}")):
            assert time.time() < deadline, "ray start --head never recorded its address"
            time.sleep(0.5)
        proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 2, "--epochs", 2,
                       "--output", out, "--quiet", "--address", "auto", env=env)
        log = finish(proc, timeout=300)
        assert proc.returncode == 0, log
        assert f"Ray dashboard at http://127.0.0.1:{port} (it asks for the token that `ray get-auth-token`" in log
        on = {}   # class name -> the node ids its actors ran on
        for actor in get(f"{api}/v0/actors?limit=1000"):
            on.setdefault(actor["class_name"], set()).add(actor["node_id"])
        assert len(on.get("ImplicitFunc", ())) == 2, on   # trials ran on both nodes of this cluster
        assert on.get("WarmTrainer") == on["ImplicitFunc"], on   # and a warm trainer on each
        # each trial was trained by a warm trainer on its own node: the trial's task (its parent)
        # ran where the trainer's did (task events arrive within about a second)
        pairs, until = set(), time.time() + 30
        while {n for n, _ in pairs} != on["ImplicitFunc"] and time.time() < until:
            tasks = get(f"{api}/v0/tasks?limit=1000")
            by_id = {t["task_id"]: t for t in tasks}
            pairs = {(t["node_id"], by_id.get(t["parent_task_id"], {}).get("node_id"))
                     for t in tasks if t["name"] == "WarmTrainer.train"}
            time.sleep(0.5)
        assert {n for n, _ in pairs} == on["ImplicitFunc"] and all(a == b for a, b in pairs), (pairs, on)
        assert len(pd.read_csv(out / "results.csv")) == 4
        # README's `ray job submit`: the search runs as a job on the head (its driver gets the
        # cluster's address and token from Ray) and writes where --output says
        job_out = tmp_path / "job"
        job = subprocess.run([ray_bin, "job", "submit", "--address", f"http://127.0.0.1:{port}", "--working-dir",
                              str(Path(__file__).parents[1]), "--", "python", "-m", "tunekae", "search", "--space",
                              "kae_vs_mlp", "--budgets", "1x", "--samples", "2", "--epochs", "2", "--quiet",
                              "--output", str(job_out)],
                             env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=300)
        assert job.returncode == 0 and "succeeded" in job.stdout + job.stderr, job.stdout + job.stderr
        assert len(pd.read_csv(job_out / "results.csv")) == 4
        with urllib.request.urlopen(urllib.request.Request(f"{api}/jobs/", headers=authorized), timeout=30) as r:
            jobs = json.loads(r.read())
        assert [j["status"] for j in jobs if j["type"] == "SUBMISSION"] == ["SUCCEEDED"], jobs
    finally:
        for node in reversed(nodes):
            if node.poll() is not None:
                continue
            os.killpg(node.pid, signal.SIGTERM)
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        # `ray start` recorded this cluster as the machine's current one; leave no dead pointer
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if current.exists() and str(gcs_port) in current.read_text():
            current.unlink()
        shutil.rmtree(node_temp, ignore_errors=True)
