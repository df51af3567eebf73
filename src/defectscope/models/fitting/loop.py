"""The plain supervised training loop: warm-up with a frozen backbone, then fine-tuning.

No framework: a for loop over epochs and batches, one optimiser per phase, a validation metric
after each epoch, the best weights kept in memory, early stopping on ``patience``. With
``ema_decay`` the moving average of the weights (``training.averaging``) is what gets validated
and kept; its decay ramps up over about one epoch.

>>> history = fit_network(net, spec, x_train, y_train, x_val, y_val)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from defectscope.data.images.augment import AugmentConfig, augment
from defectscope.models.fitting.averaging import WeightAverage, validate_averaged
from defectscope.models.fitting.eta import format_remaining, remaining_seconds
from defectscope.models.fitting.samplers import epoch_order


@dataclass
class LoopSpec:
    """What the loop needs to know about one network and task."""

    head: nn.Module  # trained from the first epoch; everything else waits for fine-tuning
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metric: Callable[[nn.Module], float]  # validation metric, higher is better
    targets_tensor: Callable[[list], torch.Tensor]  # batch targets -> tensor
    sample_classes: Sequence[int]  # one class id per training image, for oversampling
    masks: bool = False  # targets are masks: augment them with the image
    history: list = field(default_factory=list)


def _set_phase(net: nn.Module, head: nn.Module, warmup: bool, freeze_bn: bool) -> None:
    net.train()
    for parameter in net.parameters():
        parameter.requires_grad_(not warmup)
    for parameter in head.parameters():
        parameter.requires_grad_(True)
    # A frozen backbone keeps its batch-norm statistics; so does fine-tuning with ``freeze_bn``:
    # small batches give noisy statistics, and the slow running averages (momentum 0.01 in the
    # TF-ported EfficientNets) then disagree with what training saw.
    if warmup or freeze_bn:
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    module is m for m in head.modules()):
                module.eval()


def fit_network(net: nn.Module, spec: LoopSpec, x_train: np.ndarray, y_train: list, *, config,
                sampler: str = "shuffle", progress: bool = True,
                log: Callable[[str], None] = print) -> dict:
    """Train ``net`` in place and load the best validation checkpoint into it.

    ``config`` is a ``SupervisedConfig``; ``y_train`` holds class ids or boolean masks.
    Returns ``{"best_metric", "best_epoch", "epochs_run", "history", "seconds"}``.
    """
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    aug = AugmentConfig() if config.augment else AugmentConfig.none()
    best_metric, best_epoch, best_state = -np.inf, -1, None
    steps_per_epoch = math.ceil(len(spec.sample_classes) / config.batch_size)
    average = (WeightAverage(net, config.ema_decay, ramp_steps=steps_per_epoch)
               if config.ema_decay > 0 else None)
    started = time.perf_counter()
    epoch = 0
    for epoch in range(config.epochs):
        warmup = epoch < config.warmup_epochs
        if epoch == 0 or epoch == config.warmup_epochs:
            _set_phase(net, spec.head, warmup, config.freeze_bn)
            params = [p for p in net.parameters() if p.requires_grad]
            lr = config.lr if warmup else config.finetune_lr
            optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
        else:
            _set_phase(net, spec.head, warmup, config.freeze_bn)
        order = epoch_order(spec.sample_classes, sampler, rng)
        total, count = 0.0, 0
        bar = tqdm(range(0, len(order), config.batch_size), disable=not progress, unit="batch",
                   desc=f"epoch {epoch + 1}/{config.epochs}{' (warm-up)' if warmup else ''}")
        for start in bar:
            index = order[start:start + config.batch_size]
            images, targets = [], []
            for i in index:
                mask = y_train[i] if spec.masks else None
                image, mask = augment(x_train[i].astype(np.float32), mask, aug, rng)
                images.append(image)
                targets.append(mask if spec.masks else y_train[i])
            loss = spec.loss(net(torch.from_numpy(np.stack(images))),
                             spec.targets_tensor(targets))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if average is not None:
                average.update(net)
            total += float(loss.detach()) * len(index)
            count += len(index)
            bar.set_postfix(loss=f"{total / count:.4f}")
        net.eval()
        metric = validate_averaged(net, average, spec.metric)
        spec.history.append({"epoch": epoch + 1, "loss": total / max(count, 1), "val": metric,
                             "warmup": warmup})
        left = remaining_seconds(time.perf_counter() - started, epoch + 1, config.epochs,
                                 config.max_train_seconds)
        log(f"epoch {epoch + 1}/{config.epochs}: train loss {total / max(count, 1):.4f}, "
            f"validation metric {metric:.4f}; {format_remaining(left)}")
        if metric > best_metric:
            best_metric, best_epoch = metric, epoch
            best_state = copy.deepcopy(average.state if average is not None else net.state_dict())
        elif not warmup and epoch - max(best_epoch, config.warmup_epochs - 1) >= config.patience:
            log(f"early stop: no better validation metric for {config.patience} epochs")
            break
        if config.max_train_seconds and time.perf_counter() - started > config.max_train_seconds:
            log(f"stopped after {config.max_train_seconds:.0f} s (max_train_seconds)")
            break
    net.load_state_dict(best_state)
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    log(f"kept the best checkpoint: epoch {best_epoch + 1}, validation metric {best_metric:.4f}")
    return {"best_metric": best_metric, "best_epoch": best_epoch + 1, "epochs_run": epoch + 1,
            "history": list(spec.history), "seconds": time.perf_counter() - started}
