"""The Ray engine of :mod:`hiere.scale`: the same :class:`~hiere.scale.BlockWorker` as a Ray Data callable class.

A dataset of block descriptors (a few numbers each; every worker reads its block's bytes from the input
file, so on a cluster the inputs must be on storage every node sees at the same path) goes through
``map_batches`` with a fixed pool of actors, each loading the model once. At most
``MAX_BLOCKS_IN_FLIGHT`` blocks wait per actor; results stream back to the driver, which writes the
shards and the manifest (the output directory need only be on the driver's machine). Ray is imported
here only, when ``--engine ray`` is asked for.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from hiere.errors import HiereInputError
from hiere.scale import Block, BlockResult, BlockWorker, Job, Runner

MAX_BLOCKS_IN_FLIGHT = 2  # per actor: one running, one queued


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 (the extra installs it)
    except ImportError:
        raise HiereInputError(None, None, None, "--engine ray needs Ray Data: pip install 'hiere[ray]'") from None
    return ray


class RayBlockWorker:
    """Ray Data's callable class: ``__init__`` once per actor (loads the model), ``__call__`` per batch of
    block descriptors (``batch_size=1``: one block)."""

    def __init__(self, job: dict[str, Any]):
        self.worker, self.failure = None, ""
        try:
            self.worker = BlockWorker(job)
        except (HiereInputError, OSError) as error:  # e.g. a node that cannot read the model directory
            self.failure = f"a Ray worker on {socket.gethostname()} cannot load the model: {error}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        fields = list(Block.__dataclass_fields__)
        results = []
        for row in range(len(batch[fields[0]])):
            block = Block(**{name: _python(batch[name][row]) for name in fields})
            results.append(asdict(self._run(block)))
        return {name: [result[name] for result in results] for name in BlockResult.__dataclass_fields__}

    def _run(self, block: Block) -> BlockResult:
        """The block's result; bad input or an unreadable file is a result with ``failure`` set (Ray would
        pass the exception to the driver as text inside its own, so the driver raises it as one line)."""
        failure = self.failure
        if self.worker is not None:
            try:
                return self.worker.run(block)
            except (HiereInputError, OSError) as error:
                failure = f"a Ray worker on {socket.gethostname()}: {error}"
        return BlockResult(block.id, "", "", 0, 0, 0, 0, 0, socket.gethostname(), 0.0, 0.0, failure)


def _python(value: Any) -> Any:
    """A numpy scalar of a batch as the plain Python value."""
    return value.item() if hasattr(value, "item") else value


def ray_runner(address: str | None, workers: int | None, cpus_per_worker: int = 1, gpus_per_worker: float = 0.0
               ) -> Runner:
    """A runner for :func:`hiere.scale.run_job` that uses Ray Data (see the module docstring)."""
    ray = import_ray()

    def run(job: Job, blocks: list[Block]) -> Iterator[BlockResult]:
        if not blocks:
            return
        started = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=True)
            else:  # a local Ray: only the CPUs the workers ask for, its node addressed as 127.0.0.1
                cpus = (workers or max(1, (os.cpu_count() or 1) // cpus_per_worker)) * cpus_per_worker
                ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="WARNING")
            started = True
        try:
            yield from _run_dataset(ray, job, blocks, _pool_size(ray, workers, cpus_per_worker, gpus_per_worker),
                                    cpus_per_worker, gpus_per_worker)
        finally:
            if started:
                ray.shutdown()

    return run


def _pool_size(ray: Any, workers: int | None, cpus_per_worker: int, gpus_per_worker: float) -> int:
    if workers:
        return workers
    resources = ray.cluster_resources()
    size = int(resources.get("CPU", 1) // cpus_per_worker)
    if gpus_per_worker > 0:
        size = min(size, int(resources.get("GPU", 0) // gpus_per_worker))
        if size < 1:
            raise HiereInputError(None, None, None, f"--gpus-per-worker {gpus_per_worker}: the Ray cluster has "
                                  f"{resources.get('GPU', 0)} GPU(s), not enough for one worker")
    return max(1, size)


def _run_dataset(ray: Any, job: Job, blocks: list[Block], size: int, cpus_per_worker: int,
                 gpus_per_worker: float) -> Iterator[BlockResult]:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # hiere's own progress counts documents
    if hasattr(context, "print_on_execution_start"):
        context.print_on_execution_start = False
    items = [asdict(block) for block in blocks]
    # one block of the dataset per descriptor, so the actors share the work block by block
    split = "override_num_blocks" if "override_num_blocks" in inspect.signature(ray.data.from_items).parameters \
        else "parallelism"
    dataset = ray.data.from_items(items, **{split: len(items)})
    dataset = dataset.map_batches(
        RayBlockWorker, fn_constructor_kwargs={"job": asdict(job)}, batch_size=1, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=MAX_BLOCKS_IN_FLIGHT),
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None,
    )
    for row in dataset.iter_rows():
        yield BlockResult(**{name: _python(row[name]) for name in BlockResult.__dataclass_fields__})
