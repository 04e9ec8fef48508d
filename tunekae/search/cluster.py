"""The Ray cluster a search runs on: starting or attaching to it, and sizing trials to it."""
from __future__ import annotations

import os
import signal
import sys

import ray
from ray.exceptions import AuthenticationError

from ..errors import UserError
from .ray_address import check_reachable, init_failure, requested

GPU_SHARE = 0.25   # a trial's default share of a GPU: small models pack four to a GPU


def connect(address: str | None, num_cpus: int | None = None) -> str | None:
    """Start or attach to Ray; returns the dashboard URL when one is up. An address where no
    Ray cluster answers, or whose cluster refuses this process's token, is the user's to fix
    (UserError), not a traceback or a hang (ray_address.py)."""
    if ray.is_initialized():
        return None
    address, named = requested(address)
    if address:
        check_reachable(address, named)
    # Without an address, always a fresh local Ray: a bare ray.init() joins whatever cluster
    # /tmp/ray/ray_current_cluster names, and hangs when that cluster is gone.
    kwargs = {"address": address} if address else {"address": "local", "num_cpus": num_cpus,
                                                    "include_dashboard": None}
    try:
        ctx = ray.init(logging_level="WARNING", log_to_driver=True, **kwargs)
    except (AuthenticationError, ConnectionError) as e:
        raise UserError(init_failure(e, named)) from None
    url = getattr(ctx, "dashboard_url", None)
    return f"http://{url}" if url and not url.startswith("http") else url


def trial_resources(cpus_per_trial: float, gpus_per_trial: float | None) -> dict:
    """One trial's resources. gpus_per_trial None: a quarter GPU per trial when the cluster has
    GPUs (small models pack four to a GPU), else none."""
    total = ray.cluster_resources()
    gpu = gpus_per_trial if gpus_per_trial is not None else (GPU_SHARE if total.get("GPU", 0) else 0.0)
    return {"cpu": cpus_per_trial, "gpu": gpu}


def trial_capacity(per: dict, total: dict | None = None) -> int:
    """How many trials asking for `per` the whole cluster (`total`: its resources) holds at once."""
    total = ray.cluster_resources() if total is None else total
    by_cpu = int(int(total.get("CPU", 1)) // max(per["cpu"], 1e-9))
    by_gpu = int(total.get("GPU", 0) // per["gpu"]) if per["gpu"] else by_cpu
    return max(1, min(by_cpu, by_gpu))


def check_trial_fits(cpus: float, gpus: float, address: str | None, what: str = "a trial") -> None:
    """Ray waits forever for resources that no node has. On a local Ray that is a mistake in
    the flags (exit 2 before anything is written); an attached cluster (address or RAY_ADDRESS)
    may be autoscaling, so there it is a warning."""
    attached = bool(address or os.environ.get("RAY_ADDRESS"))
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return
    biggest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    message = (f"{what} asks for CPU {cpus:g} and GPU {gpus:g}, but no node of the Ray cluster has that much "
               f"(the largest has CPU {biggest.get('CPU', 0):g} and GPU {biggest.get('GPU', 0):g})")
    if not attached:
        raise UserError(f"{message}; lower --cpus-per-trial" + (" or --gpus-per-trial" if gpus else ""))
    print(f"tunekae: warning: {message}; trials wait until the cluster adds such a node", file=sys.stderr)


def shutdown() -> None:
    """End this process's Ray, with Ctrl-C ignored meanwhile: a local Ray's processes go with it
    (left to Ray's exit hook, a Ctrl-C there printed a traceback and left its dashboard and agents
    running for minutes)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ray.shutdown()
    finally:
        signal.signal(signal.SIGINT, previous)
