"""The reference comparison's training loop (``train_reference_net``) and what it needs.

Every positive candidate each epoch plus a fresh random draw of background ones
(``background_ratio`` per positive, so background never swamps the defects), each at one of its
window scales drawn at random (``scale_jitter``), the eight flips and quarter turns of each
window with its box moved alike, AdamW with a warm-up and cosine schedule
over steps or time (whichever runs out first), and the checkpoint with the best validation
candidate AP kept (early stop after ``patience`` epochs without a better one, or at
``max_train_seconds``). With ``ema_decay`` > 0 a moving average of the weights is what each
epoch validates and what is kept (``fitting.averaging``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from defectscope.models.fitting.averaging import WeightAverage
from defectscope.models.fitting.eta import format_remaining, remaining_seconds
from defectscope.models.reference_net import to_input


def dihedral(x: torch.Tensor, boxes: torch.Tensor, code: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One of the eight flips/quarter turns (``code`` bits: transpose, flip x, flip y) applied to
    a batch of windows (N x C x s x s) and their box fractions (N x 4: x1, y1, x2, y2)."""
    if code & 1:
        x = x.transpose(2, 3)
        boxes = boxes[:, [1, 0, 3, 2]]
    if code & 2:
        x = x.flip(3)
        boxes = torch.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], 1)
    if code & 4:
        x = x.flip(2)
        boxes = torch.stack([boxes[:, 0], 1 - boxes[:, 3], boxes[:, 2], 1 - boxes[:, 1]], 1)
    return x, boxes


def augment_batch(x: torch.Tensor, boxes: torch.Tensor, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """A random dihedral transform per window."""
    codes = torch.randint(0, 8, (len(x),), generator=generator)
    x, boxes = x.clone(), boxes.clone()
    for code in range(1, 8):
        chosen = (codes == code).nonzero().flatten()
        if len(chosen):
            x[chosen], boxes[chosen] = dihedral(x[chosen], boxes[chosen], code)
    return x, boxes


def box_iou_paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[i] with b[i] (N x 4 each)."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area = lambda z: np.clip(z[:, 2] - z[:, 0], 0, None) * np.clip(z[:, 3] - z[:, 1], 0, None)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def candidate_ap(probabilities: np.ndarray, offsets: np.ndarray, labels: np.ndarray,
                 targets: np.ndarray, iou: float = 0.5) -> float:
    """Average precision over candidate windows, a cheap stand-in for mAP during training.

    Each window is one detection of its most likely defect type scored by that probability;
    it is a true positive when its window holds a defect of that type and the box fraction
    overlaps the true one by ``iou``. Duplicates of one defect are not merged (no NMS), which
    is why this is a model-selection signal, not a reported figure.
    """
    positive = labels > 0
    if not positive.any():
        return 0.0
    kind = probabilities[:, 1:].argmax(axis=1) + 1
    score = probabilities[np.arange(len(kind)), kind]
    hit = positive & (kind == labels) & (box_iou_paired(offsets, targets) >= iou)
    order = np.argsort(-score, kind="stable")
    hits = hit[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / positive.sum())


def learning_rate(peak: float, progress: float, warmup: float = 0.05) -> float:
    """Linear warm-up over the first ``warmup`` of training, then a cosine down to 1 % of the
    peak. ``progress`` (0..1) is the larger of steps done and time used, so a run cut short by
    ``max_train_seconds`` still ends annealed instead of at full learning rate."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return peak * (0.1 + 0.9 * progress / warmup)
    cosine = 0.5 * (1.0 + np.cos(np.pi * (progress - warmup) / (1.0 - warmup)))
    return float(peak * (0.01 + 0.99 * cosine))


@dataclass(frozen=True)
class TrainArrays:
    """Candidate windows for training or validation: uint8 crops (N x 3 x s x s), class ids
    (N; 0 = background), true box fractions (N x 4; zeros for background)."""

    crops: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    # the same windows cut at other scales: (crops, targets) per scale, same order and labels
    views: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    def draw(self, index: np.ndarray, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
        """(crops, targets) of the windows ``index``, each at one of its scales drawn at
        random (the only one when there are no other views)."""
        if not self.views:
            return self.crops[index], self.targets[index]
        choice = rng.integers(0, len(self.views) + 1, len(index))
        crops, targets = self.crops[index], self.targets[index]
        for view, (view_crops, view_targets) in enumerate(self.views, start=1):
            picked = choice == view
            crops[picked] = view_crops[index[picked]]
            targets[picked] = view_targets[index[picked]]
        return crops, targets


def window_loss(probabilities: np.ndarray, offsets: np.ndarray, windows: TrainArrays,
                box_weight: float) -> float:
    """The training loss on evaluated windows (cross-entropy + weighted smooth L1 on defects)."""
    if not len(windows.labels):
        return 0.0
    picked = probabilities[np.arange(len(windows.labels)), windows.labels]
    loss = float(-np.log(np.clip(picked, 1e-12, None)).mean())
    positive = windows.labels > 0
    if positive.any():
        error = np.abs(offsets[positive] - windows.targets[positive])
        smooth = np.where(error < 0.02, 0.5 * error ** 2 / 0.02, error - 0.01)
        loss += box_weight * float(smooth.mean())
    return loss


@torch.inference_mode()
def run_net(net: nn.Module, crops: np.ndarray, batch_size: int = 256
            ) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities N x (K+1), box fractions N x 4) for uint8 crops, in eval mode."""
    net.eval()
    probabilities, offsets = [], []
    for start in range(0, len(crops), batch_size):
        logits, boxes = net(to_input(np.ascontiguousarray(crops[start:start + batch_size])))
        probabilities.append(torch.softmax(logits, dim=1).numpy())
        offsets.append(boxes.numpy())
    if not probabilities:
        return np.zeros((0, 0), np.float32), np.zeros((0, 4), np.float32)
    return np.concatenate(probabilities), np.concatenate(offsets)


def train_reference_net(net: nn.Module, train: TrainArrays, val: TrainArrays, config, *,
                        progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Fit ``net`` in place (see the module docstring); returns the training record.

    ``config`` supplies ``epochs``, ``lr``, ``batch_size``, ``weight_decay``, ``box_weight``,
    ``background_ratio``, ``patience``, ``augment``, ``seed``, ``max_train_seconds`` and
    ``ema_decay`` (the reference model's ``ReferenceConfig``).
    """
    c = config
    epochs, lr, batch_size, seed = c.epochs, c.lr, c.batch_size, c.seed
    max_train_seconds, patience = c.max_train_seconds, c.patience
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    positives = np.flatnonzero(train.labels > 0)
    background = np.flatnonzero(train.labels == 0)
    n_background = min(len(background), int(round(c.background_ratio * max(len(positives), 1))))
    per_epoch = len(positives) + n_background
    steps = max(1, epochs * ((per_epoch + batch_size - 1) // batch_size))
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=c.weight_decay)
    # the average forgets its start over about one epoch's steps
    average = (WeightAverage(net, c.ema_decay, ramp_steps=steps // epochs)
               if c.ema_decay > 0 else None)
    started = time.perf_counter()
    step = 0
    best_score, best_loss, best_state, best_epoch, stale = -1.0, np.inf, None, 0, 0
    history = []
    stop_reason = "epochs"
    for epoch in range(1, epochs + 1):
        order = np.concatenate([positives, rng.choice(background, n_background, replace=False)])
        order = order[rng.permutation(len(order))]
        net.train()
        total, seen = 0.0, 0
        bar = tqdm(range(0, len(order), batch_size), desc=f"reference epoch {epoch}/{epochs}",
                   unit="batch", disable=not progress, leave=False)
        for start in bar:
            elapsed = time.perf_counter() - started
            if max_train_seconds is not None and elapsed >= max_train_seconds:
                break
            progress_done = max(step / steps, elapsed / max_train_seconds
                                if max_train_seconds else 0.0)
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(lr, progress_done)
            step += 1
            index = np.sort(order[start:start + batch_size])
            crops, targets = train.draw(index, rng)
            x = to_input(crops)
            y = torch.from_numpy(train.labels[index]).long()
            t = torch.from_numpy(targets)
            if c.augment:
                x, t = augment_batch(x, t, generator)
            logits, boxes = net(x)
            loss = F.cross_entropy(logits, y)
            has_box = y > 0
            if has_box.any():
                loss = loss + c.box_weight * F.smooth_l1_loss(boxes[has_box], t[has_box],
                                                            beta=0.02)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if average is not None:
                average.update(net)
            total += float(loss.detach()) * len(index)
            seen += len(index)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        live = None
        if average is not None:  # validate (and keep) the averaged weights
            live = copy.deepcopy(net.state_dict())
            net.load_state_dict(average.state)
        probabilities, offsets = run_net(net, val.crops)
        score = candidate_ap(probabilities, offsets, val.labels, val.targets)
        val_loss = window_loss(probabilities, offsets, val, c.box_weight)
        elapsed = time.perf_counter() - started
        history.append({"epoch": epoch, "loss": round(total / max(seen, 1), 5),
                        "val_candidate_ap": round(score, 5), "val_loss": round(val_loss, 5),
                        "seconds": round(elapsed, 1)})
        log(f"reference epoch {epoch}/{epochs}: loss {total / max(seen, 1):.4f}, validation "
            f"candidate AP {score:.4f}, loss {val_loss:.4f} ({elapsed:.0f} s; "
            f"{format_remaining(remaining_seconds(elapsed, epoch, epochs, max_train_seconds))})")
        # AP ranks; once it saturates (small or easy validation sets) the lower loss, i.e. the
        # more confident and better-placed boxes, decides.
        if (round(score, 4), -val_loss) > (round(best_score, 4), -best_loss):
            best_score, best_loss, best_epoch, stale = score, val_loss, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            stale += 1
        if live is not None:
            net.load_state_dict(live)
        if stale >= patience:
            stop_reason = f"no better validation AP for {patience} epochs"
            break
        if max_train_seconds is not None and elapsed >= max_train_seconds:
            stop_reason = f"time limit {max_train_seconds:.0f} s"
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    log(f"reference network: kept epoch {best_epoch} (validation candidate AP "
        f"{best_score:.4f}, loss {best_loss:.4f}); stopped: {stop_reason}")
    return {"best_epoch": best_epoch, "val_candidate_ap": round(best_score, 5),
            "val_loss": round(float(best_loss), 5),
            "epochs_run": len(history), "stop_reason": stop_reason,
            "train_seconds": round(time.perf_counter() - started, 1),
            "n_train_windows": int(len(train.labels)),
            "n_train_positive": int(len(positives)), "history": history}
