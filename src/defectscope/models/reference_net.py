"""The small network of the reference comparison (its training loop: ``models.fitting.reference_loop``).

``ReferenceNet`` looks at one candidate window (three channels: the part, its template, their
tolerant difference) and says which defect it is, or background, and where the defect's box
lies in the window (corners as fractions of the window side). Why a small CNN from scratch and
not the pretrained EfficientNet-Lite0 trunk: the input is binarised copper beside its own
template, nothing like ImageNet photographs, and the windows are small. Measured on one CPU
thread, this 0.44 M-parameter network trains at about 2.4 ms and infers at 0.8 ms per 48 px
window; Lite0 (3.4 M) needs 15 ms and 3.4 ms at 64 px, which would turn a ten-minute training
run into an hour for no gain we could see (mAP@0.5 is already 0.99 on DeepPCB).

>>> net = ReferenceNet(n_classes=6, crop_size=48)
>>> logits, boxes = net(torch.zeros(2, 3, 48, 48))
>>> tuple(logits.shape), tuple(boxes.shape)
((2, 7), (2, 4))
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class ReferenceNet(nn.Module):
    """Class logits (background first, then the defect types) and box fractions per window."""

    def __init__(self, n_classes: int, crop_size: int = 48, width: int = 16,
                 dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv(3, w), nn.MaxPool2d(2),
            *_conv(w, 2 * w), *_conv(2 * w, 2 * w), nn.MaxPool2d(2),
            *_conv(2 * w, 4 * w), *_conv(4 * w, 4 * w), nn.MaxPool2d(2),
            *_conv(4 * w, 8 * w), nn.MaxPool2d(2))
        cells = (crop_size // 16) ** 2
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(8 * w * cells, 256),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.classify = nn.Linear(256, n_classes + 1)
        self.locate = nn.Linear(256, 4)
        with torch.no_grad():  # start from "the middle half of the window"
            self.locate.bias.copy_(torch.tensor([0.25, 0.25, 0.75, 0.75]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.neck(self.features(x))
        return self.classify(hidden), self.locate(hidden)


def to_input(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 crops (N x 3 x s x s) -> float32 in [-1, 1]."""
    tensor = torch.as_tensor(crops)
    return tensor.float().div_(127.5).sub_(1.0)
