"""Warm trainers: a search's long-lived processes that train the trials of every arm while Tune's
trial processes stay thin (no torch). Real Ray, real trainers, digits."""
import subprocess
import sys
import time

import pytest

from tunekae.data import load_dataset

pytestmark = pytest.mark.slow

ARM = {"name": "mlp_b2128", "family": "mlp", "layer": "linear", "variant": "ae", "budget": 2128}
RUN = {"input_dim": 64, "latent_dim": 16, "epochs": 3, "tolerance": 0.02, "threads": 1, "device": "cpu"}
PARAMS = {"depth": 0, "optimizer": "adam", "lr": 1e-3, "batch_size": 32, "weight_decay": 1e-5}


@pytest.fixture(scope="module")
def ray_session():
    import ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def splits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def trainers(ray_session, splits):
    from tunekae.warm_trainers import WarmTrainers
    pool = WarmTrainers.start(ray_session.put(splits), latent_dim=16, cpus_per_trial=1, concurrency=2)
    assert [len(hs) for hs in pool.by_node.values()] == [2]   # one per trial slot of the 2-CPU node
    assert all(s > 0 for s in pool.wait_ready())
    yield pool
    pool.stop()


def _thin_actor(ray):
    """A process like Tune's trial process: it imports only what tunekae.trainable imports.
    (No CPU reserved, unlike a Tune trial, so that the tests' actors never wait for each other.)"""
    @ray.remote(num_cpus=0)
    class Thin:
        def trial(self, trainers, params, epochs, seed, close_after=None):
            from tunekae.warm_trainers import stream_from_warm_trainer
            reports = stream_from_warm_trainer(trainers, params, ARM, {**RUN, "epochs": epochs}, seed)
            if reports is None:
                return None
            out = []
            started = time.perf_counter()
            for r in reports:
                out.append(r)
                if close_after is not None and len(out) == close_after:
                    reports.close()   # what a stop by Tune does: the trial returns once the trainer is free
                    break
            return out, time.perf_counter() - started

        def join(self, trainers, wave, expected, timeout_s):
            from tunekae.warm_trainers import join_first_wave
            return join_first_wave(trainers, wave, expected, timeout_s)

        def modules(self):
            return sorted(m for m in ("torch", "sklearn", "scipy") if m in sys.modules)
    return Thin.remote()


def test_the_trial_process_imports_no_torch():
    code = "import sys, tunekae.trainable; print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_a_trial_trains_in_a_warm_trainer_as_it_would_in_its_own_process(ray_session, trainers, splits):
    from tunekae.trial import stream_trial
    thin = _thin_actor(ray_session)
    remote, _ = ray_session.get(thin.trial.remote(trainers.by_node, PARAMS, 3, seed=7))
    assert [r["epoch"] for r in remote] == [1, 2, 3]
    final = remote[-1]
    assert final["status"] == "ok" and final["params"] == 2128 and final["peak_mem_mb"] > 0
    assert {"val_psnr", "val_knn_acc", "val_linear_acc"} <= set(final)   # final metrics ride on the last report
    # the trial process stayed thin: the trainer imported torch, scikit-learn and SciPy, not it
    assert ray_session.get(thin.modules.remote()) == []
    # same seed, same device, same result: a warm trainer is no different from a fresh process
    local = list(stream_trial(PARAMS, ARM, RUN, splits, seed=7))
    assert [r["val_loss"] for r in local] == [r["val_loss"] for r in remote]
    assert local[-1]["val_knn_acc"] == final["val_knn_acc"]


def test_a_stopped_trial_frees_its_trainer_and_a_late_stop_spares_the_next_trial(ray_session, trainers):
    thin = _thin_actor(ray_session)
    long = {**PARAMS, "batch_size": 8}    # ~0.1 s per epoch
    reports, seconds = ray_session.get(thin.trial.remote(trainers.by_node, long, 200, seed=1, close_after=2))
    assert [r["epoch"] for r in reports] == [1, 2]
    epoch = max(r["epoch_seconds"] for r in reports)
    assert seconds < 20 * epoch, (seconds, epoch)    # not the 200 epochs it was set for
    # both trainers are free again: two trials at once both get one (neither falls back)
    thins = [_thin_actor(ray_session) for _ in range(2)]
    runs = ray_session.get([t.trial.remote(trainers.by_node, PARAMS, 2, seed=s) for s, t in enumerate(thins)])
    assert all(r is not None and [x["epoch"] for x in r[0]] == [1, 2] for r in runs)
    # a stop meant for an earlier trial does not stop the one training now
    handle = trainers.by_node[next(iter(trainers.by_node))][0]
    stream = handle.train.remote(PARAMS, ARM, {**RUN, "epochs": 4}, 3, "current")
    first = ray_session.get(next(stream))
    ray_session.get(handle.stop.remote("an-earlier-trial"))
    assert [first["epoch"]] + [ray_session.get(r)["epoch"] for r in stream] == [1, 2, 3, 4]


def test_with_every_trainer_busy_or_gone_the_trial_trains_in_its_own_process(ray_session, trainers, splits):
    from tunekae.warm_trainers import BUSY, WarmTrainers, stream_from_warm_trainer
    (node, handles), = trainers.by_node.items()
    busy = [h.train.remote({**PARAMS, "batch_size": 8}, ARM, {**RUN, "epochs": 50}, 0, f"busy{i}")
            for i, h in enumerate(handles)]
    firsts = [ray_session.get(next(s)) for s in busy]
    assert BUSY not in firsts
    # (called on the driver, which is on the same node)
    assert stream_from_warm_trainer(trainers.by_node, PARAMS, ARM, RUN, seed=0) is None
    for i, h in enumerate(handles):
        ray_session.get(h.stop.remote(f"busy{i}"))
    for s in busy:
        list(s)
    gone = WarmTrainers.start(ray_session.put(splits), latent_dim=16, cpus_per_trial=1, concurrency=1)
    gone.wait_ready()
    handles = dict(gone.by_node)
    gone.stop()                                   # the processes are killed; the handles stay here
    assert stream_from_warm_trainer(handles, PARAMS, ARM, RUN, seed=0) is None


def test_a_trial_whose_process_is_killed_stops_training_when_the_arm_ends(ray_session, trainers):
    """Tune kills an arm's trial processes when the arm ends; a trainer streaming to one that is
    gone would train that trial on, busy when the next arm's trials arrive. The search frees
    every trainer after each arm."""
    from tunekae.warm_trainers import BUSY
    thin = _thin_actor(ray_session)
    orphan = thin.trial.remote(trainers.by_node, {**PARAMS, "batch_size": 8}, 300, seed=0)   # ~30 s of training
    time.sleep(3)
    ray_session.kill(thin)
    handles = [h for hs in trainers.by_node.values() for h in hs]

    def busy():
        probes = [h.train.remote(PARAMS, ARM, {**RUN, "epochs": 1}, 0, "probe") for h in handles]
        answers = [ray_session.get(next(p)) for p in probes]
        for p in probes:
            list(p)
        return answers.count(BUSY)
    assert busy() == 1                       # the orphan still trains
    started = time.perf_counter()
    trainers.free_all()
    assert time.perf_counter() - started < 5 and busy() == 0
    with pytest.raises(ray_session.exceptions.RayActorError):
        ray_session.get(orphan)


def test_an_arms_first_trials_wait_for_one_another_and_at_most_the_timeout(ray_session, trainers):
    """Each first trial of an arm, in its own process, waits until the others have started: Tune
    then has an actor per slot, instead of stopping every new actor when a short trial ends first."""
    from tunekae.warm_trainers import join_first_wave
    first, second = _thin_actor(ray_session), _thin_actor(ray_session)
    ray_session.get([first.modules.remote(), second.modules.remote()])   # both processes are up
    waiting = first.join.remote(trainers.by_node, "wave-a", 2, 30.0)
    time.sleep(1.5)
    assert ray_session.wait([waiting], timeout=0)[0] == []      # still waiting for the second
    assert ray_session.get(second.join.remote(trainers.by_node, "wave-a", 2, 30.0)) < 1.0
    assert 1.5 <= ray_session.get(waiting) < 5                  # released once the second arrived
    # a wave whose other trials never start (no room for them) gives up at the timeout
    assert 0.5 <= join_first_wave(trainers.by_node, "wave-b", 2, timeout_s=0.5) < 2.5
    assert join_first_wave(trainers.by_node, "wave-c", 1) == 0.0   # a lone trial never waits
    assert join_first_wave({}, "wave-d", 2) == 0.0                  # no warm trainers: no waiting either
