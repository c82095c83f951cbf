"""The one trainer: any registered model, single process or DDP, CPU or CUDA.

``train(config, out_dir)`` reads and validates the data, builds the model, trains with AdamW/Adam/SGD
(warmup + linear decay, clipping, accumulation, bf16/fp16 autocast where it pays), evaluates on dev every
epoch (tuning the global threshold of sigmoid models on dev), keeps the best epoch by the dev metric
(early stopping with ``patience``), and writes the model directory and a resumable checkpoint after
every epoch, atomically. Test data, if configured, is scored once with the selected model; it never
influences selection.
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from hiere.config import TrainerConfig, check_data_files, get
from hiere.data.relations import RelationMap
from hiere.errors import HiereConfigError, HiereInputError
from hiere.io import write_json_atomic
from hiere.memory import (
    IDEEP_CACHE_VARIABLE,
    ONEDNN_CACHE_VARIABLE,
    bound_kernel_cache,
    enable_huge_pages,
    peak_rss_mb,
    release_freed_memory,
    set_mmap_threshold,
)
from hiere.models import get_model_class
from hiere.models.base import HiereModel
from hiere.models.directory import load_model_dir, save_model_dir
from hiere.tasks import get_task
from hiere.training.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from hiere.training.distributed import DistContext, barrier, gather_objects, init_distributed, shutdown
from hiere.training.inference import (
    ChainedRows,
    autocast_context,
    featurize_examples,
    has_bf16_units,
    length_sorted,
    move_to_device,
    resolve_precision,
    run_model,
)
from hiere.training.profile import StepProfiler

log = logging.getLogger("hiere.train")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_split(task: Any, config: dict, split: str, relations: RelationMap | None, **options: Any) -> list:
    path = get(config, f"data.{split}")
    if not path:
        return []
    examples = task.read(path, relations=relations.relations if relations else None, require_labels=True, **options)
    bounds = get(config, f"data.{split}_slice")
    if bounds is not None:
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise HiereConfigError(f"data.{split}_slice must be [start, end), got {bounds!r}")
        total = len(examples)
        examples = examples[bounds[0] : bounds[1]]
        if not examples and total:
            raise HiereInputError(str(path), None, f"data.{split}_slice",
                                  f"[{bounds[0]}, {bounds[1]}) selects no examples: the file has {total} "
                                  f"(set data.{split}_slice=null to use all of them)")
    if not examples:
        raise HiereInputError(str(path), None, None, f"no examples in the {split} split")
    return examples


def build_relations(task: Any, config: dict, train_path: str | None) -> RelationMap:
    relation_file = get(config, "data.relations")
    if relation_file:
        return RelationMap.from_rel_info(relation_file)
    if not train_path:
        raise HiereConfigError("the config needs data.train (and optionally data.relations)")
    return RelationMap.from_facts(task.relation_ids(task.read(train_path, require_labels=True)))


def use_fused(model: HiereModel, trainer: TrainerConfig) -> bool:
    """``trainer.fused``: the single-kernel Adam/AdamW update (CPU and CUDA); None = wherever supported."""
    fused = trainer.fused
    supported = trainer.optimizer in ("adam", "adamw") and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in model.parameters() if p.requires_grad
    )
    if fused is None:
        return supported
    if fused and not supported:
        raise HiereConfigError("trainer.fused=true needs optimizer adam or adamw and parameters on CPU or CUDA")
    return fused


def decay_exempt_names(model: torch.nn.Module) -> set[str]:
    """``weight_decay_exempt: bias_norm``: every bias and every weight of a normalization module (LayerNorm,
    BatchNorm, GroupNorm, RMSNorm, or a class whose name says ``Norm``)."""
    names = {name for name, _ in model.named_parameters() if name.rsplit(".", 1)[-1] == "bias"}
    for module_name, module in model.named_modules():
        if "Norm" in type(module).__name__:
            prefix = f"{module_name}." if module_name else ""
            names.update(prefix + name for name, _ in module.named_parameters(recurse=False))
    return names


def exempt_from_decay(model: torch.nn.Module, groups: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    """Split each decayed group into its decayed and its exempt parameters (same learning rate)."""
    if rule == "none":
        return groups
    exempt = decay_exempt_names(model)
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    split = []
    for group in groups:
        params = list(group["params"])
        kept = [p for p in params if names.get(id(p)) not in exempt]
        free = [p for p in params if names.get(id(p)) in exempt]
        if not group.get("weight_decay") or not free:
            split.append(group)
            continue
        split.append({**group, "params": kept})
        split.append({**group, "params": free, "weight_decay": 0.0})
    return [group for group in split if group["params"]]


def make_optimizer(model: HiereModel, trainer: TrainerConfig) -> torch.optim.Optimizer:
    groups = model.parameter_groups(trainer.lr, trainer.encoder_lr, trainer.weight_decay)
    groups = exempt_from_decay(model, groups, trainer.weight_decay_exempt)
    name, fused = trainer.optimizer, use_fused(model, trainer)
    if name == "adamw":
        return torch.optim.AdamW(groups, eps=trainer.adam_epsilon, fused=fused or None)
    if name == "adam":
        return torch.optim.Adam(groups, eps=trainer.adam_epsilon, fused=fused or None)
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=trainer.momentum)
    raise HiereConfigError(f"trainer.optimizer must be adamw, adam or sgd, got {name!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, trainer: TrainerConfig, total_steps: int):
    warmup = int(trainer.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if trainer.schedule == "constant":
            return min(1.0, (step + 1) / warmup) if warmup else 1.0
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def setup_logging(out_dir: Path, is_main: bool, echo: bool = False) -> None:
    """``train.log`` in the output directory (main process); ``echo``: the same lines on stderr too (training
    without a terminal, where progress bars would write thousands of carriage-return frames into a log file)."""
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    if is_main:
        handler = logging.FileHandler(out_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(handler)
        if echo:
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(handler.formatter)
            log.addHandler(stream)
    else:
        log.addHandler(logging.NullHandler())


class Evaluator:
    """Scores a split with the model; in DDP every rank takes a strided shard and results are gathered."""

    def __init__(self, model: HiereModel, task: Any, examples: list, features: list, batch_size: int,
                 precision: str, device: torch.device, context: DistContext):
        self.model, self.task, self.examples, self.features = model, task, examples, features
        self.batch_size, self.precision, self.device, self.context = batch_size, precision, device, context

    def scores(self) -> tuple[list, torch.Tensor, Sequence[dict | None] | None]:
        shard = list(range(self.context.rank, len(self.features), self.context.world_size))
        rows, scores, explanations = run_model(
            self.model, self.features, shard, self.batch_size, self.device, self.precision
        )
        parts = gather_objects((rows, scores, explanations), self.context)
        all_rows = [row for part in parts for row in part[0]]
        all_scores = torch.cat([part[1] for part in parts])
        all_explanations = None if any(p[2] is None for p in parts) else ChainedRows([p[2] for p in parts])
        return all_rows, all_scores, all_explanations

    def evaluate(self, threshold: float | None, train_examples: list | None, tune: bool,
                 **metric_options: Any) -> tuple[dict[str, Any], float]:
        rows, scores, _ = self.scores()
        if tune:
            threshold, _ = self.task.tune_threshold(self.examples, rows, scores, self.model.relations)
        metrics = self.task.metrics_from_scores(self.examples, rows, scores, self.model.relations, threshold,
                                                train=train_examples, **metric_options)
        metrics["threshold"] = threshold
        return metrics, threshold


def epoch_batches(order: list[int], batch_size: int, features: list[dict], buckets: int, seed: int) -> list[list[int]]:
    """Cut this process's shuffled ``order`` into batches.

    ``buckets = 0``: consecutive runs of ``batch_size``. ``buckets = N``: each window of ``N`` batches' worth of
    the shuffled order is sorted by input length before it is cut, and the batches are then shuffled with
    ``seed`` (the epoch's), so a batch holds examples of similar length (less padding) while the epoch stays
    random and identical on ``--resume``.

    A last batch of fewer than ``batch_size / 4`` examples joins the batch before it: one optimizer step on a
    handful of examples weighs each of them ``batch_size / n`` times more than a full batch does (with SGD at
    OpenNRE's lr 0.1, a last batch of 3 bags kicked PCNN+ATT off course at the end of every epoch, docs/results.md).
    """
    if not buckets:
        return _merge_small_tail([order[i : i + batch_size] for i in range(0, len(order), batch_size)], batch_size)
    window = batch_size * buckets
    chunks = []
    for start in range(0, len(order), window):
        ranked = length_sorted(features, order[start : start + window])
        chunks.extend(ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size))
    chunks = _merge_small_tail(chunks, batch_size)
    generator = torch.Generator().manual_seed(seed)
    return [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]


def batches_per_epoch(examples: int, batch_size: int) -> int:
    """How many batches :func:`epoch_batches` cuts ``examples`` into (a small last batch joins the one before)."""
    full, rest = divmod(examples, batch_size)
    return full + (1 if rest and not (full and 4 * rest < batch_size) else 0)


def _merge_small_tail(chunks: list[list[int]], batch_size: int) -> list[list[int]]:
    """The last chunk into the one before it when it holds fewer than a quarter of ``batch_size``."""
    if len(chunks) >= 2 and 4 * len(chunks[-1]) < batch_size:
        return [*chunks[:-2], chunks[-2] + chunks[-1]]
    return chunks


def featurize_all(model: HiereModel, examples: list, split: str, path: str, progress: bool) -> list[dict]:
    features = []
    for index, example in enumerate(tqdm(examples, desc=f"featurize {split}", disable=not progress, leave=False)):
        try:
            features.append(model.featurize(example))
        except ValueError as error:
            raise HiereInputError(path, f"record {index}", None, str(error)) from None
    return features


def train(config: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """Train ``config`` into ``out_dir`` (a model directory) and return its path."""
    trainer = TrainerConfig.from_dict(config.get("trainer") or {})
    check_data_files(config)
    out_dir = Path(out_dir)
    context, device = init_distributed(trainer.device)
    try:
        score_test = _train(config, trainer, out_dir, resume, context, device)
        if score_test is not None:
            # outside _train's frame: its model, optimizer and training data are gone before the saved model is
            # read back, so that scoring the test set does not add to the training's peak memory; the heap's
            # free space goes back to the system first, or the scoring's tensors would come on top of it
            gc.collect()
            release_freed_memory()
            score_test()
        return out_dir
    finally:
        shutdown(context)


def _train(config: dict, trainer: TrainerConfig, out_dir: Path, resume: bool, context: DistContext,
           device: torch.device) -> Callable[[], None] | None:
    """Train into ``out_dir``; returns the test scoring to run next (None: no ``data.test``, or not the main
    process)."""
    if trainer.num_threads:
        torch.set_num_threads(trainer.num_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    # progress bars on a terminal; elsewhere (a log file, CI) train.log's lines on stderr: one every log_every batches
    progress = trainer.progress and context.is_main and sys.stderr.isatty()
    setup_logging(out_dir, context.is_main, echo=trainer.progress and context.is_main and not progress)
    if trainer.mmap_threshold_mb and set_mmap_threshold(trainer.mmap_threshold_mb):
        log.info("heap: allocations of %g MB and more mapped on their own (trainer.mmap_threshold_mb)",
                 trainer.mmap_threshold_mb)
    if trainer.huge_pages and enable_huge_pages():
        log.info("tensors of 2 MB and more on transparent huge pages (trainer.huge_pages)")
    if trainer.kernel_cache is not None:
        bound_kernel_cache(trainer.kernel_cache)  # hiere train has set it already, before any kernel ran
        log.info("oneDNN keeps at most %s compiled kernels (trainer.kernel_cache; %s=%s, %s=%s)",
                 trainer.kernel_cache, ONEDNN_CACHE_VARIABLE, os.environ.get(ONEDNN_CACHE_VARIABLE),
                 IDEEP_CACHE_VARIABLE, os.environ.get(IDEEP_CACHE_VARIABLE))
    set_seed(trainer.seed)
    precision = resolve_precision(device, trainer.precision)
    record_runtime(out_dir, trainer, precision, device, context)

    model_class = get_model_class(config["model"]["name"])
    model_config = model_class.Config.from_dict(config["model"])
    task = get_task(model_class.task)
    relations = build_relations(task, config, get(config, "data.train"))

    # build the model on the training vocabulary
    train_examples = read_split(task, config, "train", relations, **model_class.training_read_options(model_config))
    dev_examples = read_split(task, config, "dev", relations)
    resources = model_class.build_resources(model_config, train_examples, relations)
    model = model_class(model_config, resources)
    checkpoint_path = out_dir / CHECKPOINT
    resuming = resume and checkpoint_path.exists()
    if not resuming:
        model.init_pretrained()
    model.to(device)
    log.info("model %s: %d parameters (%d trainable), device %s, world size %d", model.name,
             sum(p.numel() for p in model.parameters()), sum(p.numel() for p in model.parameters() if p.requires_grad),
             device, context.world_size)

    train_features = featurize_all(model, train_examples, "train", get(config, "data.train"), progress)
    dev_features = featurize_all(model, dev_examples, "dev", get(config, "data.dev") or "", progress)

    batch_size = trainer.batch_size
    if batch_size % context.world_size:
        raise HiereConfigError(
            f"trainer.batch_size={batch_size} (the global batch) must be divisible "
            f"by the {context.world_size} processes"
        )
    local_batch = batch_size // context.world_size
    sampler = DistributedSampler(
        range(len(train_features)), num_replicas=context.world_size, rank=context.rank,
        shuffle=True, seed=trainer.seed, drop_last=False,
    )
    steps_per_epoch = batches_per_epoch(math.ceil(len(train_features) / context.world_size), local_batch)
    updates_per_epoch = math.ceil(steps_per_epoch / trainer.grad_accumulation)
    total_updates = updates_per_epoch * trainer.epochs
    if trainer.max_steps:
        total_updates = min(total_updates, trainer.max_steps)
    optimizer = make_optimizer(model, trainer)
    scheduler = make_scheduler(optimizer, trainer, total_updates)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and device.type == "cuda")

    state = {"epoch": 0, "step": 0, "best_metric": -math.inf, "best_epoch": None, "threshold": 0.0,
             "history": [], "bad_epochs": 0}
    if resuming:
        checkpoint = load_checkpoint(checkpoint_path)
        model.load_state_dict(model.upgrade_state_dict(checkpoint["model"]))
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        state = checkpoint["state"]
        restore_rng_state(checkpoint["rng"])
        log.info("resumed from %s after epoch %d", checkpoint_path, state["epoch"])
        if progress:
            tqdm.write(f"resuming after epoch {state['epoch']} (best dev so far: {state['best_metric']:.4f})")

    wrapped: torch.nn.Module = model
    if context.enabled:
        wrapped = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    metric_name = trainer.metric or task.primary_metric
    tune = model.decision == "global"
    evaluator = Evaluator(model, task, dev_examples, dev_features, trainer.eval_batch_size, precision, device, context)
    metric_options = task.metric_options(long_tail=get(config, "data.long_tail"))
    train_for_ign = task.metrics_train(train_examples)
    resolved = {**config, "data": dict(config.get("data") or {}), "trainer": trainer.to_dict()}

    profiler = StepProfiler(trainer.profile_steps if context.is_main else 0, out_dir, model, device, precision,
                            memory=trainer.profile_memory)
    start_epoch = state["epoch"] + 1
    if trainer.patience and state["bad_epochs"] >= trainer.patience:  # --resume of a run that stopped early
        log.info("stopped early after epoch %d (no dev improvement in %d epochs): nothing left to train",
                 state["epoch"], state["bad_epochs"])
        start_epoch = trainer.epochs + 1
    for epoch in range(start_epoch, trainer.epochs + 1):
        if trainer.max_steps and state["step"] >= trainer.max_steps:
            break
        model.on_epoch_start(epoch, trainer.epochs)
        wrapped.train()
        sampler.set_epoch(epoch)
        order = list(sampler)
        chunks = epoch_batches(order, local_batch, train_features, trainer.length_buckets,
                               trainer.seed * 1_000_003 + epoch)
        started, running_loss, seen = time.perf_counter(), 0.0, 0
        term_sums: dict[str, float] = {}
        bar = tqdm(chunks, desc=f"epoch {epoch}/{trainer.epochs}", disable=not progress, unit="batch")
        optimizer.zero_grad(set_to_none=True)
        for step_in_epoch, chunk in enumerate(bar, start=1):
            with profiler.phase("collate"):
                batch = move_to_device(model.collate([train_features[i] for i in chunk]), device)
            with profiler.phase("forward"), autocast_context(device, precision):
                output = wrapped(batch)
            with profiler.phase("backward"):
                loss = output["loss"].float() / trainer.grad_accumulation
                scaler.scale(loss).backward()
            running_loss += float(output["loss"].detach())
            for name, value in output.get("loss_terms", {}).items():
                term_sums[name] = term_sums.get(name, 0.0) + float(value)
            seen += 1
            if step_in_epoch % trainer.grad_accumulation == 0 or step_in_epoch == len(chunks):
                with profiler.phase("optimizer"):
                    scaler.unscale_(optimizer)
                    if trainer.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                profiler.step_done()
                if trainer.max_steps and state["step"] >= trainer.max_steps:
                    break
            if step_in_epoch % trainer.log_every == 0:
                bar.set_postfix(loss=f"{running_loss / seen:.4f}")
                log.info("epoch %d batch %d/%d: loss %.4f (%.1f s)", epoch, step_in_epoch, len(chunks),
                         running_loss / seen, time.perf_counter() - started)
        bar.close()
        profiler.finish()  # a profile never spans an evaluation: it ends with the epoch's training part
        train_seconds = time.perf_counter() - started
        epoch_loss = float(np.mean([v for v in gather_objects(running_loss / max(1, seen), context)]))
        record: dict[str, Any] = {"epoch": epoch, "loss": epoch_loss, "train_seconds": round(train_seconds, 2)}
        peaks = {"train": peak_rss_mb()}  # the process's high-water mark after each part (this rank's)
        terms = gather_objects({name: total / max(1, seen) for name, total in term_sums.items()}, context)
        if any(terms):
            record["loss_terms"] = {name: float(np.mean([part[name] for part in terms if name in part]))
                                    for name in terms[0]}

        improved = False
        if dev_examples and (epoch % trainer.eval_every == 0 or epoch == trainer.epochs):
            evaluated = time.perf_counter()
            metrics, threshold = evaluator.evaluate(state["threshold"] if not tune else None, train_for_ign, tune,
                                                    **metric_options)
            record["dev_seconds"] = round(time.perf_counter() - evaluated, 2)  # prediction + scoring, in-process
            peaks["dev"] = peak_rss_mb()
            if metric_name not in metrics:
                raise HiereConfigError(f"trainer.metric={metric_name!r} is not among the dev metrics {sorted(metrics)}")
            record["dev"] = metrics
            value = float(metrics[metric_name])
            if value > state["best_metric"]:
                improved = True
                state.update(best_metric=value, best_epoch=epoch, threshold=threshold, bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            message = (f"epoch {epoch}: loss {epoch_loss:.4f}, dev {metric_name} {value:.4f} "
                       f"(best {state['best_metric']:.4f} @ epoch {state['best_epoch']})")
        else:
            improved = not dev_examples
            message = f"epoch {epoch}: loss {epoch_loss:.4f}"
        if peaks["train"] is not None:
            record["peak_rss_mb"] = peaks
        log.info(message)
        if progress:
            tqdm.write(message)
        state["epoch"] = epoch
        state["history"].append(record)
        if context.is_main:
            if improved:
                save_model_dir(model, resolved, state["threshold"], out_dir, record.get("dev"))
            write_json_atomic(out_dir / "history.json", state["history"], indent=1)
            save_checkpoint(out_dir / CHECKPOINT, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "state": state, "rng": rng_state(),
            })
        barrier(context)
        if trainer.patience and state["bad_epochs"] >= trainer.patience:
            log.info("early stop: no dev improvement in %d epochs", state["bad_epochs"])
            break

    if context.is_main and not (out_dir / "config.yaml").exists():
        save_model_dir(model, resolved, state["threshold"], out_dir)
    barrier(context)
    if get(config, "data.test") and context.is_main:
        return functools.partial(_score_test, config, out_dir, task, device, precision, train_for_ign, metric_options)
    return None


def record_runtime(out_dir: Path, trainer: TrainerConfig, precision: str, device: torch.device,
                   context: DistContext) -> None:
    """Log what ``trainer.device`` and ``trainer.precision`` resolved to, and write it to ``runtime.json``."""
    bf16_units = has_bf16_units(device)
    log.info("precision %s (trainer.precision=%s; %s %s bf16 units)", precision, trainer.precision, device,
             "has" if bf16_units else "has no")
    if precision == "bf16" and not bf16_units:
        log.warning("bf16 on %s is emulated and many times slower than fp32 (precision auto picks fp32)", device)
    if context.is_main:
        write_json_atomic(out_dir / "runtime.json", {
            "device": str(device), "world_size": context.world_size, "precision": trainer.precision,
            "precision_resolved": precision, "bf16_units": bf16_units, "torch": torch.__version__,
        }, indent=1)


def _score_test(config: dict, out_dir: Path, task: Any, device: torch.device, precision: str,
                train_examples: list | None, metric_options: dict) -> None:
    """Score the selected model once on test (never used for selection), as saved: read back from ``out_dir``."""
    from hiere.evidence import model_rule

    model, saved, threshold = load_model_dir(out_dir, device)
    test_examples = read_split(task, config, "test", model.relations)
    rule = model_rule(model.config) if task.evidence else None
    rows, scores, explanations = run_model(model, featurize_examples(model, test_examples), None,
                                           int(saved["trainer"]["eval_batch_size"]), device, precision)
    if not task.evidence:
        explanations = None  # bag attention weights: not scored, so freed before the metrics
    metrics = task.metrics_from_scores(test_examples, rows, scores, model.relations, threshold, explanations,
                                       evidence_rule=rule, train=train_examples, **metric_options)
    write_json_atomic(out_dir / "test_metrics.json", metrics, indent=1)
    log.info("test: %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})


