"""Losses for supervised models: class-weighted cross-entropy, focal loss, Dice.

Focal loss (Lin et al. 2017) down-weights easy examples, ``-alpha_t (1 - p_t)^gamma log p_t``,
so the few hard (often rare-class) examples dominate the gradient.

>>> logits = torch.tensor([[2.0, 0.0]]); target = torch.tensor([0])
>>> round(float(focal_loss(logits, target, gamma=0.0)), 4)  # gamma 0 is plain cross-entropy
0.1269
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-class focal loss, mean over the batch. ``logits`` N x C, ``target`` N (class ids).

    ``weight`` (C) is the per-class alpha; with ``gamma=0`` and no weight it is cross-entropy.
    """
    log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    if weight is not None:
        loss = loss * weight[target]
    return loss.mean()


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
                      alpha: float | None = None) -> torch.Tensor:
    """Per-pixel focal loss on logits (any shape); ``target`` holds 0/1 of the same shape."""
    target = target.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)  # the probability given to the true class
    loss = (1 - p_t) ** gamma * bce
    if alpha is not None:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss.mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch (N x 1 x H x W); ``eps`` keeps all-good batches finite."""
    prob = torch.sigmoid(logits)
    target = target.float()
    intersection = (prob * target).sum()
    return 1 - (2 * intersection + eps) / (prob.sum() + target.sum() + eps)


def classification_loss(name: str, class_weights: torch.Tensor | None, gamma: float = 2.0):
    """A ``loss(logits, target)`` callable: ``ce``, ``weighted_ce`` or ``focal``."""
    if name == "ce":
        return lambda logits, target: F.cross_entropy(logits, target)
    if name == "weighted_ce":
        return lambda logits, target: F.cross_entropy(logits, target, weight=class_weights)
    if name == "focal":
        return lambda logits, target: focal_loss(logits, target, gamma, class_weights)
    raise ValueError(f"unknown loss {name!r}; use ce, weighted_ce or focal")


def segmentation_loss(name: str, gamma: float = 2.0):
    """``dice_bce`` or ``dice_focal``: Dice plus a per-pixel term, for N x 1 x H x W logits."""
    if name == "dice_bce":
        return lambda logits, mask: dice_loss(logits, mask) + F.binary_cross_entropy_with_logits(
            logits, mask.float())
    if name == "dice_focal":
        return lambda logits, mask: dice_loss(logits, mask) + binary_focal_loss(logits, mask, gamma)
    raise ValueError(f"unknown segmentation loss {name!r}; use dice_bce or dice_focal")
