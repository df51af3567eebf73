"""Reference comparison: find defects by comparing each part with its golden template, then let a
small network name each difference and draw its box.

Why two stages: the comparison (``reference_compare``) finds nearly every defect with no
training at all (on DeepPCB a candidate region lies inside 99.8 % of the labelled boxes), but it
also fires on noise and misregistered edges, often splits one defect into fragments, and its
regions are much smaller than the boxes people draw. The network (``reference_net``) sees a
window around each candidate (part, template, difference) and answers both: which defect type
or background, and where the labelled box is. Per-class NMS then merges the fragments, whose
boxes now agree.

Every box a window yields for a defect type with probability >= ``min_confidence`` is reported
(its confidence is that probability), best first; the decision threshold on top is the base
class's.

>>> model = create_model("reference", epochs=8)                               # doctest: +SKIP
>>> model.fit(dataset.only("train"), dataset.only("val"))                     # doctest: +SKIP
>>> model.detect(image, template)[0]                                          # doctest: +SKIP
Detection(box=(466.0, 441.0, 493.0, 470.0), label='mousebite', confidence=0.98)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from defectscope.data.boxes.dataset import DetectionDataset, DetectionSample, load_pair
from defectscope.errors import AlignmentError, ConfigError, DataError, DefectscopeError
from defectscope.models.backbones import HALF, WeightsSource
from defectscope.models.box_base import DetectionModel
from defectscope.scoring.reference_compare import CompareConfig, Comparison, encode_boxes
from defectscope.scoring.reference_detect import (
    GOLDEN_TEMPLATE_KEY,
    ReferenceSettings,
    candidate_comparison,
    candidate_windows,
    scaled_settings,
    window_scales,
)
from defectscope.models.fitting.reference_loop import TrainArrays, train_reference_net
from defectscope.models.reference_net import ReferenceNet
from defectscope.models.registry import register
from defectscope.models.contract import load_network_arrays, network_arrays
from defectscope.preprocess import PreprocessConfig
from defectscope.scoring.box_heads import ReferenceHead
from defectscope.scoring.boxes import box_iou

FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    """Options of the reference comparison; the comparison ones are ``CompareConfig``'s."""

    # comparison (see reference_compare.CompareConfig)
    tolerance: int = 2
    min_difference: int = 60
    max_shift: int = 6
    align: bool = False
    open_size: int = 0
    min_area: int = 4
    max_region: int = 48
    merge_distance: int = 0
    max_candidates: int = 300  # per image, the largest regions first (a wrong template guard)
    # windows the network sees
    crop_size: int = 48  # network input side, px
    context: int = 96  # smallest window side at native resolution, px
    region_scale: float = 2.5  # window side >= this x the region's longer side
    # training windows also cut 1/(1 + j) and (1 + j) times as large, one scale drawn per
    # window each epoch: the network meets defects and copper at other apparent sizes, as on
    # a board imaged at another scale. 0.25 raised DeepPCB's leave-one-group-out mean mAP@0.5
    # from 0.942 (0) and its worst fold most (benchmarks/detection_deeppcb.py --cv); 0 turns
    # it off
    scale_jitter: float = 0.25
    width: int = 16  # channels of the first convolution (x2, x4, x8 deeper)
    # training
    epochs: int = 12
    lr: float = 2e-3
    batch_size: int = 64
    weight_decay: float = 1e-4
    box_weight: float = 5.0
    background_ratio: float = 1.0  # background windows drawn per defect window each epoch
    patience: int = 4
    augment: bool = True
    ema_decay: float = 0.0  # > 0: validate and keep a moving average of the weights
    val_fraction: float = 0.15  # carved off train (whole groups) when no val is given
    max_train_seconds: float | None = None
    seed: int = 0
    # inference
    nms_iou: float = 0.5
    min_confidence: float = 0.05
    unsure_band: float = 0.0
    # test-time averaging of each window's class probabilities and box: over its eight flips
    # and quarter turns (8 x the network's work), and over the training window scales of
    # ``scale_jitter`` (3 x the windows; one scale when it is 0). Both together raised
    # DeepPCB's leave-one-group-out mean mAP@0.5 from 0.952 to 0.964, on every one of the seven
    # folds, at about 10 x the inference time (13 -> 146 ms per 640 px board on 2 cores;
    # benchmarks/detection_deeppcb.py --cv --variant ...). Bundles saved before them have
    # neither (bundle.load_bundle)
    test_flips: bool = True
    test_scales: bool = True

    def __post_init__(self) -> None:
        self.compare_config()  # validates those fields
        if not 16 <= self.crop_size <= 256 or self.crop_size % 16:
            raise ConfigError(f"crop_size must be a multiple of 16 in 16..256, not "
                              f"{self.crop_size}")
        if self.context < 8 or self.region_scale < 1.0:
            raise ConfigError("context must be >= 8 px and region_scale >= 1")
        if not 0.0 <= self.scale_jitter <= 1.0:
            raise ConfigError(f"scale_jitter must be in [0, 1], not {self.scale_jitter}")
        if self.epochs < 1 or self.batch_size < 2 or self.patience < 1 or self.width < 4:
            raise ConfigError("need epochs >= 1, batch_size >= 2, patience >= 1, width >= 4")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.box_weight >= 0
                and self.background_ratio >= 0):
            raise ConfigError("lr must be > 0; weight_decay, box_weight and background_ratio "
                              ">= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), not {self.ema_decay}")
        if not 0.0 < self.val_fraction < 1.0 or self.max_candidates < 1:
            raise ConfigError("val_fraction must be in (0, 1) and max_candidates >= 1")
        if self.max_train_seconds is not None and not self.max_train_seconds > 0:
            raise ConfigError(f"max_train_seconds must be > 0, not {self.max_train_seconds}")
        if not 0.0 <= self.nms_iou <= 1.0 or not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError("nms_iou and min_confidence must be in [0, 1]")
        if not 0 <= self.unsure_band < 1:
            raise ConfigError(f"unsure_band {self.unsure_band} must be in [0, 1)")

    def compare_config(self) -> CompareConfig:
        return CompareConfig(tolerance=self.tolerance, min_difference=self.min_difference,
                             max_shift=self.max_shift, align=self.align,
                             open_size=self.open_size, min_area=self.min_area,
                             max_region=self.max_region, merge_distance=self.merge_distance)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def assign_regions(regions: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """For each region the index of the labelled box holding its centre (the best-overlapping
    one when several do), -1 for background."""
    regions = np.asarray(regions, np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(regions) or not len(boxes):
        return np.full(len(regions), -1, np.int64)
    cx = (regions[:, 0] + regions[:, 2]) / 2
    cy = (regions[:, 1] + regions[:, 3]) / 2
    contains = ((boxes[None, :, 0] <= cx[:, None]) & (cx[:, None] <= boxes[None, :, 2])
                & (boxes[None, :, 1] <= cy[:, None]) & (cy[:, None] <= boxes[None, :, 3]))
    preference = np.where(contains, box_iou(regions, boxes) + 1.0, -1.0)
    return np.where(contains.any(axis=1), preference.argmax(axis=1), -1).astype(np.int64)


def selection_slice(samples: Sequence[DetectionSample], fraction: float, seed: int
                    ) -> tuple[tuple[DetectionSample, ...], tuple[DetectionSample, ...]]:
    """(rest, slice): about ``fraction`` of ``samples`` for model selection, whole groups at a
    time (shuffled by ``seed``; a group joins only when it brings the slice closer to the
    target) when there are two or more groups, random images otherwise. Both parts are non-empty."""
    samples = tuple(samples)
    if len(samples) < 2:
        raise DataError("need at least two training images to set some aside for model "
                        "selection; pass validation samples")
    rng = np.random.default_rng(seed)
    target = max(1.0, fraction * len(samples))
    groups: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        groups.setdefault(sample.group if sample.group is not None else f"#{i}", []).append(i)
    chosen: list[int] = []
    if len(groups) >= 2 and len(groups) < len(samples):
        keys = sorted(groups)
        for k in rng.permutation(len(keys)):
            members = groups[keys[k]]
            grown = len(chosen) + len(members)
            if abs(grown - target) < abs(len(chosen) - target) and grown < len(samples):
                chosen.extend(members)
        if not chosen:
            chosen = list(groups[min(groups, key=lambda key: len(groups[key]))])
    if not chosen or len(chosen) >= len(samples):
        chosen = list(rng.permutation(len(samples))[:int(round(target))])
    picked = set(chosen)
    return (tuple(s for i, s in enumerate(samples) if i not in picked),
            tuple(s for i, s in enumerate(samples) if i in picked))


@register("reference")
class ReferenceComparison(DetectionModel):
    """Golden-template comparison plus a small window classifier (see the module docstring)."""

    config_class = ReferenceConfig
    needs_template = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # The network sees crop_size windows cut at native resolution; recorded in the bundle.
        self.preprocess_config = PreprocessConfig(
            image_size=self.config.crop_size, resize="keep_aspect", max_side=4096, multiple=1,
            mean=HALF, std=HALF, normalise="none")

    # -- windows ------------------------------------------------------------------------------
    # Comparison, windows and everything after the network are ``reference_detect``'s, the
    # functions the torch-free runtime calls too.
    def _settings(self) -> ReferenceSettings:
        return ReferenceSettings.from_config(self.config.to_dict())

    def _compare(self, image: np.ndarray, template: np.ndarray | None) -> Comparison:
        return candidate_comparison(image, template, self._settings())

    def _windows(self, comparison: Comparison) -> tuple[np.ndarray, np.ndarray]:
        return candidate_windows(comparison, self._settings())

    def _scaled_views(self, comparison: Comparison, box_of: np.ndarray, owner: np.ndarray
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(crops, targets) of the candidates' windows at the jittered scales (none without
        ``scale_jitter``)."""
        views = []
        for scale in window_scales(self.config.scale_jitter)[1:]:
            windows, crops = candidate_windows(comparison, scaled_settings(self._settings(), scale))
            target = np.where((owner >= 0)[:, None], encode_boxes(box_of, windows), 0.0)
            views.append((crops, target.astype(np.float32)))
        return views

    def _training_windows(self, dataset: DetectionDataset, samples: Sequence[DetectionSample],
                          desc: str, progress: bool, log: Callable[[str], None],
                          jitter: bool = False) -> TrainArrays:
        from tqdm import tqdm

        index = {name: i + 1 for i, name in enumerate(self.classes_)}
        crops, labels, targets, views = [], [], [], []
        failed = []
        n_boxes = n_found = 0
        for sample in tqdm(samples, desc=desc, unit="img", disable=not progress, leave=False):
            image, template = load_pair(dataset, sample)
            if template is None:
                raise DataError(f"{sample.path}: has no template; reference comparison needs "
                                "one for every image (use the detector model otherwise)")
            try:
                comparison = self._compare(image, template)
            except AlignmentError as error:
                failed.append(f"{sample.path} ({error})")
                continue
            truth = comparison.to_compare_frame(np.array([b.xyxy for b in sample.boxes]))
            owner = assign_regions(comparison.regions, truth)
            windows, window_crops = self._windows(comparison)
            box_of = truth[np.maximum(owner, 0)] if len(truth) else np.zeros((len(owner), 4))
            label = np.array([index[sample.boxes[o].label] if o >= 0 else 0 for o in owner],
                             np.int64)
            target = np.where((owner >= 0)[:, None], encode_boxes(box_of, windows), 0.0)
            crops.append(window_crops)
            labels.append(label)
            targets.append(target.astype(np.float32))
            if jitter:
                views.append(self._scaled_views(comparison, box_of, owner))
            n_boxes += len(sample.boxes)
            n_found += len(set(owner[owner >= 0].tolist()))
        if failed:
            log(f"warning: {len(failed)} image(s) could not be aligned and were left out: "
                + "; ".join(failed[:5]) + (" ..." if len(failed) > 5 else ""))
        if not crops:
            raise DataError("no image of the training set could be compared with its template")
        scaled = tuple((np.concatenate([v[k][0] for v in views]),
                        np.concatenate([v[k][1] for v in views]))
                       for k in range(len(views[0]) if views else 0))
        arrays = TrainArrays(np.concatenate(crops), np.concatenate(labels),
                             np.concatenate(targets), scaled)
        log(f"{desc}: {len(samples) - len(failed)} images -> {len(arrays.labels)} candidate "
            f"windows, {int((arrays.labels > 0).sum())} on defects; candidates reach "
            f"{n_found}/{n_boxes} labelled boxes")
        return arrays

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, data: DetectionDataset, val: DetectionDataset | None = None, *,
            progress: bool = True, log: Callable[[str], None] = print) -> "ReferenceComparison":
        """Learn the window classifier from ``data``'s samples (images loaded one pair at a
        time), select the checkpoint on ``val``'s or, when there are none, on a group-aware
        slice of the training samples (kept in ``selection_samples_``). Calling it again starts
        afresh. Returns ``self``."""
        dataset = data
        # Validation images load from their own dataset (the training one's when held out).
        val_source = val if val is not None and val.samples else data
        train, val = tuple(data.samples), tuple(val.samples if val is not None else ())
        if not train:
            raise DataError("reference comparison needs training images with boxes")
        missing = [s.path for s in train + val if s.template_path is None]
        if missing:
            raise DataError(f"{len(missing)} image(s) have no template (e.g. {missing[0]}); "
                            "reference comparison needs a template for every image")
        if not any(s.boxes for s in train):
            raise DataError("no labelled box in the training images; the network learns defect "
                            "types and boxes from them")
        self.classes_ = tuple(dataset.classes)
        if not val:
            train, val = selection_slice(train, self.config.val_fraction, self.config.seed)
            log(f"no validation images: {len(val)} training images (whole groups) set aside "
                "for model selection")
        self.selection_samples_ = val
        torch.manual_seed(self.config.seed)
        train_arrays = self._training_windows(dataset, train, "reference train windows",
                                              progress, log, jitter=True)
        val_arrays = self._training_windows(val_source, val, "reference validation windows",
                                            progress, log)
        if not (train_arrays.labels > 0).any():
            raise DataError("no candidate region fell on a labelled box; check that the "
                            "templates belong to the images (or lower min_difference)")
        net = ReferenceNet(len(self.classes_), self.config.crop_size, self.config.width)
        self.training_ = train_reference_net(net, train_arrays, val_arrays, self.config,
                                             progress=progress, log=log)
        self.net_ = net.eval()
        self.fitted_ = True
        self.weights_source_ = WeightsSource(backbone="none", origin="trained from scratch",
                                             sha256=None)
        self.n_train_images_ = len(train)
        self.threshold_, self.calibration_ = None, None
        return self

    # -- inspection (the contract's predictor) -------------------------------------------------
    def network(self) -> nn.Module:
        """The window network: float32 windows -> (class logits, box fractions)."""
        return self.net_

    def head(self) -> ReferenceHead:
        """Compares a part with its template (the golden one when none comes with it); a
        missing or mismatched template raises, and with ``align`` a pair it cannot register."""
        return ReferenceHead(self.classes_, self._settings(), self.golden_template, self.name)

    # -- golden template ----------------------------------------------------------------------
    @property
    def golden_template(self) -> np.ndarray | None:
        """The product's defect-free template stored with the model, if one was set: what a part
        is compared with when no template comes with it (the line, the REST service)."""
        return getattr(self, "golden_template_", None)

    def set_golden_template(self, template: np.ndarray | None) -> "ReferenceComparison":
        """Store ``template`` (RGB or grey uint8) in the model and its bundle; None removes it."""
        if template is None:
            self.golden_template_ = None
            return self
        array = np.asarray(template)
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise DataError(f"a golden template must be a uint8 grey or RGB image, not "
                            f"{array.dtype} of shape {array.shape}")
        self.golden_template_ = np.ascontiguousarray(array)
        return self

    # -- bundle -------------------------------------------------------------------------------
    def _tensors(self) -> dict[str, np.ndarray]:
        tensors = network_arrays(self.net_)
        if self.golden_template is not None:
            tensors[GOLDEN_TEMPLATE_KEY] = self.golden_template
        return tensors

    def _meta(self) -> dict[str, Any]:
        return {"classes": list(self.classes_), "format_version": FORMAT_VERSION}

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise DefectscopeError("this reference model was saved by a newer defectscope; "
                                   "upgrade defectscope")
        self.classes_ = tuple(meta["classes"])
        template = arrays.get(GOLDEN_TEMPLATE_KEY)
        self.golden_template_ = None if template is None else np.array(template, dtype=np.uint8)
        net = ReferenceNet(len(self.classes_), self.config.crop_size, self.config.width)
        self.net_ = load_network_arrays(net, arrays, self.name)
