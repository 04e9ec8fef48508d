"""Warm trainer processes shared by every arm of a search (search layer: imports Ray).

Tune starts fresh worker processes for every experiment, i.e. for every arm, and a fresh
process spent about 8 s of CPU before its first trial trained: torch (2 s), torch._dynamo,
which the optimizer's first step imports (2 s), scikit-learn and SciPy for the final metrics
(2 s), ray.tune (1.5 s). With ~1 s trials on 2 CPUs that made an arm's wall 1.8-1.9x its ideal
(benchmarks/search_overhead.py).

So a search starts, once, one WarmTrainer per trial slot on each node. Each imports and warms
up everything a trial needs (trial.warm_up) and then trains trial after trial, arm after arm.
A Tune trial (trainable.py) is a thin process that imports only ray.tune: it takes an idle
trainer on its own node and hands the trainer's per-epoch reports to tune.report.

Resources stay Tune's: a trainer asks Ray for no CPU, the trial that holds the slot does, and
the trainer trains one trial at a time with that trial's torch threads. A trial that finds no
idle trainer on its node (a node the autoscaler added, a trainer that died) trains in its own
process, as every trial did before; so do GPU trials, since Ray gives the GPU to the trial's
process (no trainers are started for them).
"""
from __future__ import annotations

import sys
import threading
import time
import uuid

import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

BUSY = "busy"   # a trainer's first and only item when it is training another trial


@ray.remote(num_cpus=0, max_concurrency=4)   # stop(), and BUSY answers, get through while train() runs
class WarmTrainer:
    def __init__(self, splits, latent_dim: int, threads: int):
        import torch

        from .trial import warm_up
        torch.set_num_threads(threads)
        started = time.perf_counter()
        warm_up(splits, latent_dim, threads)
        self.warm_up_seconds = time.perf_counter() - started
        self.splits = splits
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._token = None
        self._arrivals: dict[str, int] = {}   # first waves this trainer coordinates (join_first_wave)
        self._arrivals_lock = threading.Lock()

    def ready(self) -> float:
        """Seconds the warm-up took (answers once it is done)."""
        return self.warm_up_seconds

    def train(self, params: dict, arm: dict, run: dict, seed: int, token: str):
        """Yields the trial's reports; just BUSY when another trial has this trainer."""
        if not self._busy.acquire(blocking=False):
            yield BUSY
            return
        try:
            from .trial import stream_trial
            self._token = token
            self._stop.clear()
            yield from stream_trial(params, arm, run, self.splits, seed, stop=self._stop)
        finally:
            self._token = None
            self._busy.release()

    def stop(self, token: str) -> None:
        """Stop the trial `token` (a stop that arrives late never stops the next trial)."""
        if self._token == token:
            self._stop.set()

    def arrive(self, wave: str) -> int:
        """One more trial process of `wave` (an arm's first trials) has started; how many have."""
        with self._arrivals_lock:
            self._arrivals[wave] = self._arrivals.get(wave, 0) + 1
            return self._arrivals[wave]

    def arrivals(self, wave: str) -> int:
        return self._arrivals.get(wave, 0)

    def free(self) -> None:
        """Stop whatever this trainer trains and return once it is idle. Only for between arms:
        Tune kills the arm's trial processes when the arm ends, at times before a stopped
        trial's stop() has left its process, and a trainer streaming to a process that is gone
        would go on training that trial to its last epoch, busy when the next arm begins."""
        self._stop.set()
        with self._busy:
            pass


class WarmTrainers:
    """The search's trainers: started once, each warming up in parallel, stopped at its end."""

    def __init__(self, handles: dict[str, list]):
        self.by_node = handles

    @classmethod
    def start(cls, splits_ref, latent_dim: int, cpus_per_trial: float, concurrency: int) -> "WarmTrainers":
        """One trainer per trial slot on every alive node (at most `concurrency` per node),
        pinned to its node: a trial only ever uses a trainer beside it."""
        threads = max(1, int(cpus_per_trial))
        handles: dict[str, list] = {}
        for node in ray.nodes():
            slots = int(node.get("Resources", {}).get("CPU", 0) // cpus_per_trial) if node.get("Alive") else 0
            for _ in range(min(slots, concurrency)):
                handles.setdefault(node["NodeID"], []).append(WarmTrainer.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(splits_ref, latent_dim, threads))
        return cls(handles)

    def wait_ready(self) -> list[float]:
        """Blocks until every trainer has warmed up; their warm-up seconds (benchmarks)."""
        return ray.get([h.ready.remote() for hs in self.by_node.values() for h in hs])

    def free_all(self) -> None:
        """Every trainer idle (see WarmTrainer.free); a trainer that died is left to the trials,
        which skip it."""
        for ref in [h.free.remote() for hs in self.by_node.values() for h in hs]:
            try:
                ray.get(ref)
            except RayActorError:
                pass

    def stop(self) -> None:
        for h in (h for hs in self.by_node.values() for h in hs):
            ray.kill(h)
        self.by_node = {}


FIRST_WAVE_TIMEOUT_S = 10.0   # longer than a trial process takes to start on a busy node


def join_first_wave(trainers: dict[str, list], wave: str, expected: int,
                    timeout_s: float = FIRST_WAVE_TIMEOUT_S, poll_s: float = 0.02) -> float:
    """An arm's first trials wait, each in its own trial process, until `expected` of those
    processes have started (at most `timeout_s`); returns the seconds waited.

    Why: with reuse_actors=True, when a trial ends before the actor Tune is starting for the
    next trial is up, Tune hands that trial the ended trial's actor, stops the actor it was
    starting, and starts a new one for the trial after. When trials are shorter than an actor's
    start-up (about 2 s on 2 busy cores; the paper's recipe trains in 0.2 s on digits) this
    repeats for the whole arm: every new actor is stopped before its first trial, one trial runs
    at a time and each discarded actor burns about 2 s of CPU. It hit 8 of 76 runs of the 1x MLP
    arm in benchmarks/search_overhead.py (none of 35 since), whose wall then was 2.6x its ideal
    instead of 1.4x. Once every slot's process is running a trial, Tune keeps and reuses all of them.

    The search's first warm trainer counts the arrivals; polling it, not blocking in it, keeps
    its threads free whatever the number of trials that wait."""
    if not trainers or expected <= 1:
        return 0.0
    coordinator = trainers[min(trainers)][0]
    started = time.monotonic()
    try:
        arrived = ray.get(coordinator.arrive.remote(wave))
        while arrived < expected and time.monotonic() - started < timeout_s:
            time.sleep(poll_s)
            arrived = ray.get(coordinator.arrivals.remote(wave))
    except RayActorError:
        pass   # no coordinator: the trials run as Tune schedules them
    return time.monotonic() - started


def stream_from_warm_trainer(trainers: dict[str, list], params: dict, arm: dict, run: dict, seed: int):
    """The reports of the trial trained by an idle warm trainer on this node, or None when
    there is none (the trial then trains in its own process)."""
    here = trainers.get(ray.get_runtime_context().get_node_id(), [])
    start = seed % max(len(here), 1)   # concurrent trials try the trainers in different orders
    token = uuid.uuid4().hex
    for handle in here[start:] + here[:start]:
        stream = handle.train.remote(params, arm, run, seed, token)
        try:
            first = ray.get(next(stream))
        except (RayActorError, StopIteration) as e:
            print(f"tunekae: a warm trainer is gone ({type(e).__name__}); trying another", file=sys.stderr)
            continue
        if first != BUSY:
            return _follow(handle, stream, first, token)
    return None


def _follow(handle, stream, first: dict, token: str):
    try:
        yield first
        for ref in stream:
            yield ray.get(ref)
    finally:
        # Tune stopped the trial (or it ended): the trainer drops the epoch under way, and
        # this trial returns, freeing its slot, only once the trainer is free for the next.
        handle.stop.remote(token)
        try:
            for _ in stream:
                pass
        except RayActorError:
            pass
