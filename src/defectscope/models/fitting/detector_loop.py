"""The plain training loop for detection networks (torchvision-style: the network returns its
losses in train mode): AdamW, linear warm-up then cosine decay, an exponential moving average of
the weights, a validation metric (mAP@0.5) every few epochs, the best weights kept.

Why a time-aware cosine: on a CPU a run is often capped by ``max_train_seconds``, and the speed of
a shared machine is not known in advance. Cutting a cosine schedule short leaves the learning
rate high and the weights noisy, so the schedule's progress is the larger of the share of steps
done and the share of the time budget used: the rate reaches its floor when either runs out, and
training stops mid-epoch (then validates once more) when the time is up.

Why an average of the weights (EMA): with a few thousand steps the last weights jump around;
their moving average scores steadier and usually higher, and it is what gets validated and kept.

>>> history = fit_detection_network(net, batches, n_batches, config=config,   # doctest: +SKIP
...                                 validate=lambda net: map50(net))
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from defectscope.models.fitting.averaging import WeightAverage, validate_averaged
from defectscope.models.fitting.eta import format_remaining, remaining_seconds

Batch = tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]


def warmup_cosine(step: int, warmup: int, progress: float, floor: float = 0.05) -> float:
    """The learning-rate factor: linear warm-up over the first ``warmup`` steps, and a cosine
    from 1 down to ``floor`` as ``progress`` (0..1, share of the run done) goes by.

    >>> [round(warmup_cosine(s, 10, p), 2) for s, p in ((0, 0.0), (10, 0.1), (50, 0.5), (99, 1.0))]
    [0.1, 0.98, 0.53, 0.05]
    """
    progress = min(max(progress, 0.0), 1.0)
    cosine = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return min((step + 1) / max(1, warmup), cosine)


def run_progress(step: int, total_steps: int, elapsed: float, max_seconds: float | None) -> float:
    """Share of the run done: of the steps, or of the time budget when that is further along."""
    done = step / max(1, total_steps)
    if max_seconds:
        done = max(done, elapsed / max_seconds)
    return min(done, 1.0)


def fit_detection_network(net: nn.Module, batches: Callable[[int], Iterable[Batch]],
                          n_batches: int, *, config, validate: Callable[[nn.Module], float],
                          progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train ``net`` in place, then load its best validated weights (averaged, if ``ema_decay``).

    ``batches(epoch)`` yields ``n_batches`` (images, targets) pairs; ``config`` has ``epochs``,
    ``lr``, ``weight_decay``, ``warmup_epochs``, ``grad_clip``, ``ema_decay``, ``eval_every``,
    ``max_train_seconds`` and ``seed``. Returns ``{"best_metric", "best_epoch", "epochs_run",
    "history", "seconds", "stopped_early"}``; ``epochs_run`` counts a partial last epoch.
    """
    torch.manual_seed(config.seed)
    params = [p for p in net.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]  # biases and norms: no weight decay
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    average = WeightAverage(net, config.ema_decay) if config.ema_decay > 0 else None
    warmup = max(1, round(config.warmup_epochs * n_batches))
    total_steps = config.epochs * n_batches
    budget = config.max_train_seconds
    best = {"metric": -np.inf, "epoch": 0, "state": None, "seconds": 0.0}
    history: list[dict] = []

    def check(epoch: int) -> float:
        checked = time.perf_counter()
        metric = validate_averaged(net, average, validate)
        best["seconds"] = time.perf_counter() - checked
        if metric >= best["metric"]:  # a tie goes to the later, longer-trained weights
            state = average.state if average is not None else net.state_dict()
            best.update(metric=metric, epoch=epoch, state=copy.deepcopy(state))
        return metric

    started, step, epoch, out_of_time = time.perf_counter(), 0, 0, False
    while epoch < config.epochs and not out_of_time:
        epoch += 1
        net.train()
        total, count = 0.0, 0
        bar = tqdm(_limited(batches(epoch), n_batches), total=n_batches, unit="batch",
                   disable=not progress, desc=f"epoch {epoch}/{config.epochs}")
        for images, targets in bar:
            # Time for one more validation (as long as the last) is part of the budget too.
            elapsed = time.perf_counter() - started + best["seconds"]
            if budget and elapsed >= budget:
                out_of_time = True
                break
            factor = warmup_cosine(step, warmup, run_progress(step, total_steps, elapsed, budget))
            for group in optimiser.param_groups:
                group["lr"] = config.lr * factor
            losses = net(images, targets)
            loss = sum(losses.values())
            step += 1
            if not torch.isfinite(loss):
                log(f"warning: non-finite loss at step {step}; batch skipped")
                continue
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimiser.step()
            if average is not None:
                average.update(net)
            total, count = total + float(loss.detach()), count + 1
            bar.set_postfix(loss=f"{total / count:.3f}", lr=f"{config.lr * factor:.1e}")
        bar.close()
        if not count:  # the time ran out before this epoch's first step
            epoch -= 1
            if history and "val" not in history[-1]:
                history[-1]["val"] = check(epoch)
            break
        record = {"epoch": epoch, "loss": total / count, "steps": count}
        if epoch % config.eval_every == 0 or epoch == config.epochs or out_of_time:
            record["val"] = check(epoch)
        history.append(record)
        log(f"epoch {epoch}/{config.epochs}{' (partial)' if out_of_time else ''}: loss "
            f"{record['loss']:.4f}"
            + (f", validation mAP@0.5 {record['val']:.4f}" if "val" in record else "")
            + f" ({time.perf_counter() - started:.0f} s; "
            + format_remaining(remaining_seconds(time.perf_counter() - started, epoch,
                                                 config.epochs, budget)) + ")")
    if out_of_time:
        log(f"stopped at the time budget (max_train_seconds {budget:g}) after {step} steps")
    if best["state"] is not None:
        net.load_state_dict(best["state"])
    net.eval()
    net.requires_grad_(False)
    log(f"kept the best checkpoint: epoch {best['epoch']}, validation mAP@0.5 "
        f"{best['metric']:.4f}")
    return {"best_metric": float(best["metric"]), "best_epoch": best["epoch"], "epochs_run": epoch,
            "history": history, "seconds": time.perf_counter() - started,
            "stopped_early": out_of_time}


def _limited(batches: Iterable[Batch], n: int) -> Iterator[Batch]:
    for index, batch in enumerate(batches):
        if index >= n:
            return
        yield batch
