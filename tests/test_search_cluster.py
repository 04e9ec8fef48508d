"""Search as a user runs it from a shell: kill -9, Ctrl-C, a dead trial process, a copied or moved
search, and a run attached to a two-node `ray start` cluster with token authentication, whose
trials show in the dashboard's HTTP API."""
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


def wait_for(proc, condition, timeout: float, what: str) -> None:
    """Poll `condition()` until it holds; the search must still be running then."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not condition():
        time.sleep(0.05)
    assert proc.poll() is None, f"the search ended before {what}:\n" + proc.stdout.read()
    assert condition(), f"{what} did not happen within {timeout} s"


def ended_trials(out: Path) -> int:
    """Trials whose end the search has recorded in its studies."""
    import optuna
    journal = out / "studies.journal"
    if not journal.exists():
        return 0
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    return sum(t.state.is_finished() for s in optuna.get_all_study_summaries(storage)
               for t in optuna.load_study(study_name=s.study_name, storage=storage).trials)


def ended_at_kill(out: Path, epochs: int) -> set[tuple[str, int]]:
    """(arm, study trial) of the trials a resume does not train again: those whose end the studies
    recorded, and those whose log holds their final report."""
    import optuna
    from tunekae.search.trial_log import TrialLog
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "studies.journal")))
    ended = {(s.study_name, t.number) for s in optuna.get_all_study_summaries(storage)
             for t in optuna.load_study(study_name=s.study_name, storage=storage).trials if t.state.is_finished()}
    return ended | {(p.parent.name, int(p.stem)) for p in (out / "trial_logs").glob("*/*.jsonl")
                    if TrialLog(p.parent, p.stem, epochs).finished_report() is not None}


def _study_states(out: Path, arm: str) -> list[str]:
    import optuna
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "studies.journal")))
    return [t.state.name for t in optuna.load_study(study_name=arm, storage=storage).trials]


def comparable(results: pd.DataFrame) -> pd.DataFrame:
    """What a search decided: each trial's configuration, loss, epochs and ASHA's verdict."""
    results = results.sort_values(["arm", "study_trial"], ignore_index=True)
    return results[["arm", "study_trial", "hidden", *sorted(c for c in results if c.startswith("hp_")), "val_loss",
                    "epochs_completed", "stopped_early", "status"]]


def test_kill_9_then_resume_decides_as_an_uninterrupted_search(tmp_path):
    """One trial at a time, the same search twice: once uninterrupted, once killed with -9 in the
    middle of a trial's training after five trials had ended, and resumed. Exactly `samples` trials per arm, none lost, none trained
    twice (the ended ones keep their measured seconds), and every trial the same: TPE samples the
    same configurations and ASHA stops the same trials, its rungs replayed from the journal."""
    args = ["search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 6, "--epochs", 6, "--max-concurrent", 1,
            "--seed", 7, "--quiet"]
    whole = tunekae(*args, "--output", tmp_path / "whole")
    log = finish(whole, timeout=400)
    assert whole.returncode == 0, log
    expected = pd.read_csv(tmp_path / "whole" / "results.csv")
    assert expected["stopped_early"].any() and (~expected["stopped_early"]).any()    # ASHA decided things

    out = tmp_path / "cut"
    proc = tunekae(*args, "--output", out)

    def training_after_five_ended() -> bool:
        """At least five trials ended, and the newest one (the only one not ended) mid-training."""
        logs = list((out / "trial_logs").glob("*/*.jsonl"))
        ended = ended_trials(out)
        if ended < 5 or ended != len(logs) - 1:
            return False
        lines = max(logs, key=lambda p: p.stat().st_mtime).read_text().splitlines()
        try:
            last = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            return False
        return last is not None and last["status"] == "ok" and last["epochs_completed"] < 6
    wait_for(proc, training_after_five_ended, 300, "a trial training after five had ended")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.csv").exists()
    # epochs take milliseconds: the trial under way may have written its final epoch to its log
    # between the check and the kill; the resume replays such a log instead of training it again
    ended_before = len(ended_at_kill(out, epochs=6))
    assert ended_before >= 5
    resumed = tunekae("search", "--output", out, "--resume")
    log = finish(resumed, timeout=400)
    assert resumed.returncode == 0, log
    results = pd.read_csv(out / "results.csv")
    assert results.groupby("arm").size().to_dict() == {"mlp_b2128": 6, "kae_b2128": 6}, log
    pd.testing.assert_frame_equal(comparable(results), comparable(expected))
    for arm in ("mlp_b2128", "kae_b2128"):
        assert _study_states(out, arm) == ["COMPLETE"] * 6, (arm, log)
    # the trials that had ended before the kill were not trained again: their logs are untouched
    # by the resumed session (Tune's trial folders of that session hold only the others)
    resumed_trials = {p.name for p in (out / "ray" / "resume-1").iterdir() if p.is_dir()}
    assert len(resumed_trials) == 12 - ended_before, (resumed_trials, ended_before)


def test_a_copied_or_moved_interrupted_search_resumes_where_it_now_is(tmp_path):
    """Nothing of a search's record holds its own absolute path: a copy resumes into itself (the
    original is left as it was) and a moved one resumes where it now is."""
    out = tmp_path / "original"
    proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 4, "--epochs", 8,
                   "--max-concurrent", 1, "--output", out, "--quiet")
    wait_for(proc, lambda: ended_trials(out) >= 2, 300, "two trials ended")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    copy, moved = tmp_path / "copy", tmp_path / "moved"
    shutil.copytree(out, copy, symlinks=True)
    snapshot = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for target in (copy, moved):
        if target == moved:
            shutil.move(out, moved)
        resumed = tunekae("search", "--output", target, "--resume")
        log = finish(resumed, timeout=300)
        assert resumed.returncode == 0, log
        results = pd.read_csv(target / "results.csv")
        assert results.groupby("arm").size().to_dict() == {"mlp_b2128": 4, "kae_b2128": 4}, log
        if target == copy:   # the original was not written to
            assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot


@pytest.fixture
def small_disk(tmp_path):
    """A 100 kB tmpfs (root with the right to mount, as in CI's container), grown to 5 MB by
    calling the fixture's value: a disk that fills during a search, then gets space back."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")

    def grow():
        subprocess.run(["mount", "-o", "remount,size=5m", str(mount)], check=True)
    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_ends_the_search_with_one_line_and_resume_finishes_it(small_disk):
    """The disk fills in the middle of the search (a journal line, a trial log or Tune's state cut
    off): one line and exit 2, no traceback; with space again, --resume mends what was cut and
    ends with exactly `samples` trials per arm, each study trial once."""
    mount, grow = small_disk
    out = mount / "run"
    proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 8, "--epochs", 20,
                   "--output", out, "--quiet")
    log = finish(proc, timeout=300)
    assert proc.returncode == 2, log
    lines = [line for line in log.splitlines() if line.strip() and not line.startswith("tunekae: Ray dashboard")]
    assert lines == [f"tunekae search: error: the disk is full ({out}); free some space, then continue with: "
                     f"python -m tunekae search --output {out} --resume"], log
    grow()
    resumed = tunekae("search", "--output", out, "--resume", "--quiet")
    log = finish(resumed, timeout=300)
    assert resumed.returncode == 0, log
    results = pd.read_csv(out / "results.csv")
    assert results.groupby("arm")["study_trial"].apply(sorted).to_dict() == {
        "mlp_b2128": list(range(8)), "kae_b2128": list(range(8))}, log
    for arm in ("mlp_b2128", "kae_b2128"):
        assert _study_states(out, arm) == ["COMPLETE"] * 8, (arm, log)


def test_ctrl_c_stops_the_search_and_resume_finishes_it(tmp_path):
    """The first Ctrl-C stops the search (trials under way stop, no new one starts), exit 130
    with the resume command; --resume finishes it. A second Ctrl-C stops at once, quietly."""
    out = tmp_path / "run with space"
    proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 8, "--epochs", 10,
                   "--max-concurrent", 1, "--output", out, "--quiet")
    wait_for(proc, lambda: len(list((out / "trial_logs").glob("*/*.jsonl"))) >= 3, 240, "three trials started")
    os.killpg(proc.pid, signal.SIGINT)   # what Ctrl-C in a terminal does
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, log
    assert f"continue with: python -m tunekae search --output '{out}' --resume" in log, log
    assert "Traceback" not in log and "Exception ignored" not in log, log
    # the half-done search is not taken for a results dir: both commands point at --resume
    for command in (["confirm", out], ["pareto", out]):
        run = subprocess.run([sys.executable, "-m", "tunekae.analysis" if command[0] == "pareto" else "tunekae",
                              *map(str, command)], env=ENV, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and "has not finished" in run.stderr, run.stderr
    resumed = tunekae("search", "--output", out, "--resume")
    wait_for(resumed, lambda: ended_trials(out) >= 6, 240, "six trials ended")
    os.killpg(resumed.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(resumed.pid, signal.SIGINT)   # a second Ctrl-C
    log, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 130 and "Traceback" not in log and "Exception ignored" not in log, log
    again = tunekae("search", "--output", out, "--resume")
    log = finish(again, timeout=400)
    assert again.returncode == 0, log
    results = pd.read_csv(out / "results.csv")
    assert results.groupby("arm").size().to_dict() == {"mlp_b2128": 8, "kae_b2128": 8}
    for arm in ("mlp_b2128", "kae_b2128"):
        assert sorted(results.loc[results["arm"] == arm, "study_trial"]) == list(range(8))
        assert _study_states(out, arm) == ["COMPLETE"] * 8


def test_a_dead_trial_process_is_an_error_row_and_trials_stay_concurrent(tmp_path):
    """A trial's process killed (as the OOM killer would): Tune starts a replacement process, the
    trial is recorded as an error, and the search goes on with two trials at a time (with
    first-in-first-out scheduling the waiting trial took the freed process and the replacement
    was stopped, so the rest ran one at a time). Tune's saved state is never needed: the search
    resumes the same with it deleted."""
    out = tmp_path / "run"
    proc = tunekae("search", "--space", "kae_vs_mlp", "--budgets", "1x", "--samples", 8, "--epochs", 40,
                   "--no-asha", "--output", out, "--quiet")
    logs = out / "trial_logs"
    wait_for(proc, lambda: len(list(logs.glob("*/*.jsonl"))) >= 2 and all(
        p.read_text().count("\n") >= 2 for p in logs.glob("*/*.jsonl")), 240, "two trials under way")
    victim_log = sorted(logs.glob("*/*.jsonl"))[0]
    victim = json.loads(victim_log.read_text().splitlines()[0])
    killed_at = time.time()
    os.kill(victim["pid"], signal.SIGKILL)
    log = finish(proc, timeout=400)
    assert proc.returncode == 0, log
    results = pd.read_csv(out / "results.csv")
    assert results.groupby("arm").size().to_dict() == {"mlp_b2128": 8, "kae_b2128": 8}
    errors = results[results["status"] == "error"]
    assert len(errors) == 1, errors
    # trial processes are reused: the one killed may have moved on from the trial whose log named it
    error_log = logs / errors["arm"].iloc[0] / f"{errors['study_trial'].iloc[0]}.jsonl"
    assert json.loads(error_log.read_text().splitlines()[0])["pid"] == victim["pid"], errors
    later, before = [], set()   # (started, last report, process) of the trials started after the kill
    for path in logs.glob("*/*.jsonl"):
        reports = [json.loads(line) for line in path.read_text().splitlines()]
        if reports[0]["started"] > killed_at:
            later.append((reports[0]["started"], reports[-1]["reported"], reports[0]["pid"]))
        else:
            before.add(reports[0]["pid"])
    later.sort()
    # the replacement process trains trials (with first-in-first-out scheduling it was stopped
    # before its first trial, every time), and once it is up, two trials run at a time
    replacement = next((pid for _, _, pid in later if pid not in before), None)
    assert replacement is not None, f"no trial ran in a new process after the kill: {later}"
    assert sum(pid == replacement for _, _, pid in later) >= 2, later
    since = [s for s in later if s[0] >= next(a for a, _, pid in later if pid == replacement)]
    # a trial that starts while another runs (trials differ in length: compare with all, not the previous one)
    overlapping = sum(any(o[0] < t[0] < o[1] for o in since if o is not t) for t in since[1:])
    assert len(since) >= 4 and overlapping >= len(since) // 2, since
    shutil.rmtree(out / "ray")
    (out / "results.csv").unlink()
    again = tunekae("search", "--output", out, "--resume")
    log = finish(again, timeout=120)
    assert again.returncode == 0, log
    assert comparable(pd.read_csv(out / "results.csv")).equals(comparable(results))


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
    With one trial slot per node the search's trials run on both nodes, each in a Tune trial
    process that the dashboard lists as an ImplicitFunc actor."""
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
        results = pd.read_csv(out / "results.csv")
        assert len(results) == 4 and (results["status"].isin(["ok", "collapsed"])).all()
        # README's `ray job submit`: the search runs as a job on the head (its driver gets the
        # cluster's address and token from Ray) and writes where --output says
        job_out = tmp_path / "job"
        for _ in range(10):   # the head's job agent may still be starting ("try again later")
            job = subprocess.run([ray_bin, "job", "submit", "--address", f"http://127.0.0.1:{port}", "--working-dir",
                                  str(Path(__file__).parents[1]), "--", "python", "-m", "tunekae", "search", "--space",
                                  "kae_vs_mlp", "--budgets", "1x", "--samples", "2", "--epochs", "2", "--quiet",
                                  "--output", str(job_out)],
                                 env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=300)
            if "No available agent to submit job" not in job.stdout + job.stderr:
                break
            time.sleep(3)
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
