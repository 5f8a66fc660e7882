"""The batch on a Ray cluster: ``run_batch(..., runner=ray_runner(address))``.

The only module that imports Ray (an optional extra: ``pip install "clipasso-inkscape[ray]"``);
``clipasso batch --ray`` imports it, nothing else does.

Each worker is a Ray actor holding ``cpus_per_sketch`` CPU cores and ``gpus_per_sketch`` of a
GPU (a share below 1 lets several sketches use one GPU): it loads the CLIP models once and
sketches photo after photo with :func:`batch.sketch_bytes`, the code the local batch runs, so
the outputs are the same for the same seeds. The driver (this process) reads the photos, sends
their bytes, and writes what comes back; workers need no shared disk, only the same engine
version and, for real weights, the CLIP weights in their cache.

As many actors start as the alive nodes fit (per node: its CPUs / cpus_per_sketch, and its GPUs
/ gpus_per_sketch) and the cluster has free now, at most one per photo. Each keeps one photo queued behind the one it is
sketching, so it never waits for the driver between photos.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from dataclasses import replace
from typing import Any, Iterator, Optional, Sequence

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")    # no usage report from a studio's machines

import ray  # noqa: E402
from ray.exceptions import RayActorError, RayTaskError  # noqa: E402

from .batch import BatchError, Outcome, Recipe, Runner, Task, read_task, sketch_bytes, warm_models  # noqa: E402

QUEUED_PER_WORKER = 2      # the photo being sketched and the next one


class SketchWorker:
    """One Ray actor: the models of the recipe stay loaded on its device between photos."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe

    def ready(self) -> Optional[str]:
        """Load the models; ``None`` when ready, else the reason (e.g. weights missing on this node)."""
        try:
            warm_models(self.recipe)
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None

    def run(self, name: str, data: bytes) -> Outcome:
        return sketch_bytes(self.recipe, name, data)


def ray_runner(
    address: Optional[str] = None,
    *,
    gpus_per_sketch: Optional[float] = None,
    cpus_per_sketch: float = 1.0,
    num_cpus: Optional[int] = None,
) -> Runner:
    """A runner for :func:`batch.run_batch` that computes on Ray.

    Args:
        address: cluster to join (``host:6379``, ``auto``, ``ray://host:10001``); ``None`` starts
            a local Ray for the batch (with ``num_cpus`` cores, default all) and stops it after.
            When Ray is already initialized in this process, that Ray is used as it is.
        gpus_per_sketch: share of a GPU per sketch; ``None``: 1 when the cluster has GPUs and
            the settings' device allows CUDA, else 0 (CPU).
        cpus_per_sketch: CPU cores per sketch (Ray sets the actor's torch threads to it).
    """

    def run(recipe: Recipe, tasks: Sequence[Task]) -> Iterator[tuple[Task, Outcome]]:
        if not tasks:
            return
        started_here = _connect(address, num_cpus)
        actors: list[Any] = []
        try:
            gpus = _gpus(gpus_per_sketch, recipe)
            if gpus == 0 and recipe.settings.device == "auto":      # a worker holding no GPU must not use one
                recipe = replace(recipe, settings=recipe.settings.model_copy(update={"device": "cpu"}))
            count = min(len(tasks), _capacity(cpus_per_sketch, gpus))
            worker = ray.remote(SketchWorker).options(num_cpus=cpus_per_sketch, num_gpus=gpus, max_restarts=2)
            actors = [worker.remote(recipe) for _ in range(count)]
            problems = [p for p in ray.get([a.ready.remote() for a in actors]) if p]
            if problems:
                raise BatchError(f"the Ray workers cannot load the models: {problems[0]}")
            yield from _dispatch(actors, tasks)
        finally:
            for a in actors:
                ray.kill(a)
            if started_here:
                ray.shutdown()

    return run


def _connect(address: Optional[str], num_cpus: Optional[int]) -> bool:
    """Join ``address`` or start a local Ray; True when this call started or joined it (and
    must shut it down)."""
    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **common)
    except ConnectionError as exc:
        raise BatchError(f"cannot join the Ray cluster at {address}: {exc}") from None
    return True


def _gpus(asked: Optional[float], recipe: Recipe) -> float:
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    if asked is None:
        return 1.0 if has_gpus and recipe.settings.device in ("auto", "cuda") else 0.0
    if asked > 0 and not has_gpus:
        raise BatchError(f"gpus_per_sketch is {asked:g} but the Ray cluster has no GPUs")
    return asked


def _capacity(cpus: float, gpus: float) -> int:
    """How many workers the alive nodes hold at once (each node: its CPUs / cpus, its GPUs / gpus)."""
    total = 0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        total += _fits(node.get("Resources", {}), cpus, gpus)
    if total < 1:
        what = f"{cpus:g} CPU core(s)" + (f" and {gpus:g} of a GPU" if gpus else "")
        raise BatchError(f"no node of the Ray cluster has {what} for one sketch; lower --cpus-per-sketch "
                         "or --gpus-per-sketch")
    # on a cluster that also runs other work, start only the workers that can start now (at least one)
    return max(1, min(total, _fits(ray.available_resources(), cpus, gpus)))


def _fits(resources: dict[str, float], cpus: float, gpus: float) -> int:
    """How many workers of ``cpus`` cores and ``gpus`` of a GPU these resources hold."""
    fit = math.floor(resources.get("CPU", 0) / cpus + 1e-9)
    if gpus > 0:
        fit = min(fit, math.floor(resources.get("GPU", 0) / gpus + 1e-9))
    return fit


def _dispatch(actors: list[Any], tasks: Sequence[Task]) -> Iterator[tuple[Task, Outcome]]:
    """Keep every actor busy with up to QUEUED_PER_WORKER photos; yield outcomes as they come."""
    todo = deque(tasks)
    queued = {id(a): 0 for a in actors}
    in_flight: dict[Any, tuple[Task, Any]] = {}

    def feed(actor: Any) -> list[tuple[Task, Outcome]]:
        unreadable = []
        while todo and queued[id(actor)] < QUEUED_PER_WORKER:
            task = todo.popleft()
            data = read_task(task)
            if isinstance(data, Outcome):
                unreadable.append((task, data))
                continue
            in_flight[actor.run.remote(task.name, data)] = (task, actor)
            queued[id(actor)] += 1
        return unreadable

    for a in actors:
        yield from feed(a)
    while in_flight:
        [ref], _ = ray.wait(list(in_flight), num_returns=1)
        task, actor = in_flight.pop(ref)
        queued[id(actor)] -= 1
        try:
            outcome = ray.get(ref)
        except RayTaskError as exc:       # sketch_bytes returns image problems; this is the unexpected
            outcome = Outcome("failed", 0.0, error=f"on the Ray worker: {exc.cause or exc}")
        except RayActorError as exc:      # the worker died (node lost, killed for memory); Ray restarts it
            outcome = Outcome("failed", 0.0, error=f"the Ray worker died while sketching it: {exc}")
        yield task, outcome
        yield from feed(actor)
