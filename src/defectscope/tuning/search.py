"""Choose among a small, fixed set of candidate settings by how well each ranks held-out defects.

The candidates differ where no single value serves every product (measured with
``benchmarks/anomaly_suite.py``): the input resolution and, with it, the neighbourhood a patch
feature averages over (a small input with a wide neighbourhood suits coarse texture defects, a
larger one with a narrow neighbourhood thin cracks and small pits), and tiling for images much
larger than the network input. Each candidate is fitted on a seeded subset of the training
goods and scored on held-back goods plus defects (synthetic ones, with real validation defects
when there are any); the choice is the best mean of image AUROC and pixel AUROC (with real
defects, their figure and the synthetic one weigh half each), the cheaper candidate on a tie.
Options the user set are never overridden: candidates only fill the rest.

``tune`` itself knows nothing of models: it takes an ``evaluate(candidate) -> metrics`` function,
so the budget and choice rules are tested on their own.

>>> rows = [{"candidate": "a", "image_auroc": 0.9, "pixel_auroc": 0.8, "relative_cost": 1},
...         {"candidate": "b", "image_auroc": 0.95, "pixel_auroc": 0.9, "relative_cost": 4}]
>>> choose(rows)["candidate"]
'b'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from defectscope.errors import ConfigError
from defectscope.memory import every as trim_every

MODES = ("auto", "off")
MAX_METRIC_SIDE = 256  # maps and masks are compared at most this large: enough to rank


@dataclass(frozen=True)
class Candidate:
    """One setting to try: options merged under the user's, and its cost relative to the first."""

    name: str
    options: Mapping[str, Any]
    relative_cost: float = 1.0


@dataclass(frozen=True)
class TuningResult:
    chosen: Candidate
    rows: tuple[dict[str, Any], ...]
    budget_seconds: float
    ran_out: bool
    n_goods: int
    n_defects: int
    n_synthetic: int
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.name,
            "chosen_options": dict(self.chosen.options),
            "candidates": [dict(row) for row in self.rows],
            "budget_seconds": self.budget_seconds,
            "budget_ran_out": self.ran_out,
            "seconds": round(self.seconds, 1),
            "validation": {"n_goods": self.n_goods, "n_defects": self.n_defects,
                           "n_synthetic": self.n_synthetic},
            "selection": "mean of image and pixel AUROC on held-back goods and defects; "
                         "the cheaper candidate on a tie",
        }


def _tile_candidate(size: int, shorter_side: int, overlap: float = 0.25) -> Candidate | None:
    """Tiles of ``size`` at native resolution, when the image holds at least 3 x 3 of them."""
    if shorter_side < 3 * size:
        return None
    per_side = int(np.ceil((shorter_side - size) / (size * (1 - overlap)))) + 1
    return Candidate(f"tiles of {size} px, 3x3", {
        "image_size": size, "max_side": size, "neighbourhood": 3,
        "steps": [{"name": "tile", "mode": "on", "size": size}]}, 4.0 * per_side ** 2)


def candidates_for(model_name: str, user_options: Mapping[str, Any],
                   image_shape: tuple[int, ...] | None = None) -> list[Candidate]:
    """The candidates for ``model_name`` (empty: nothing to tune), user options kept.

    ``image_shape`` is a typical training image's shape; very large images add a tiling
    candidate (PatchCore only: PaDiM models fixed positions of the whole image)."""
    if model_name == "patchcore":
        candidates = [
            Candidate("short side 128, 5x5", {"image_size": 128, "max_side": 256,
                                              "neighbourhood": 5}, 1.0),
            # PatchCore's half-size second scale (context_downscale 2) is not a candidate: the
            # synthetic defects rank it level with this one on all three suite datasets while
            # the real ones differ (README, "PatchCore's second scale")
            Candidate("short side 256, 3x3", {"image_size": 256, "max_side": 640,
                                              "neighbourhood": 3}, 4.0),
        ]
        if image_shape is not None and not user_options.get("steps"):
            tiled = _tile_candidate(256, min(image_shape[:2]))
            if tiled is not None:
                candidates.append(tiled)
    elif model_name == "padim":
        candidates = [Candidate("128 px", {"image_size": 128}, 1.0),
                      Candidate("256 px", {"image_size": 256}, 4.0)]
    else:
        return []
    merged, seen = [], set()
    for candidate in candidates:
        options = {**candidate.options, **dict(user_options)}
        key = repr(sorted((k, repr(v)) for k, v in options.items()))
        if key not in seen:  # the user's options can make two candidates the same
            seen.add(key)
            merged.append(Candidate(candidate.name, options, candidate.relative_cost))
    return merged if len(merged) > 1 else []


def _mean_auroc(row: Mapping[str, Any], prefix: str = "") -> float | None:
    values = [row[prefix + k] for k in ("image_auroc", "pixel_auroc")
              if row.get(prefix + k) is not None]
    return float(np.mean(values)) if values else None


def selection_score(row: Mapping[str, Any]) -> float:
    """Mean of image and pixel AUROC; with real defects, the synthetic and the real figure
    weigh half each (real defects are few, synthetic ones only a proxy)."""
    groups = [v for v in (_mean_auroc(row), _mean_auroc(row, "real_")) if v is not None]
    return float(np.mean(groups)) if groups else float("-inf")


def choose(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The evaluated row with the best selection score; the cheaper (earlier) one on a tie."""
    evaluated = [row for row in rows if "skipped" not in row]
    if not evaluated:
        raise ConfigError("no tuning candidate was evaluated")
    best = evaluated[0]
    for row in evaluated[1:]:
        if selection_score(row) > selection_score(best) + 1e-9:
            best = row
    return best


def tune(evaluate: Callable[[Candidate], Mapping[str, Any]], candidates: Sequence[Candidate],
         budget_seconds: float, clock: Callable[[], float] = time.monotonic,
         log: Callable[[str], None] = lambda message: None) -> tuple[Candidate, list[dict], bool]:
    """Evaluate candidates in order within ``budget_seconds``; returns (chosen, rows, ran_out).

    The first candidate always runs. Before each later one the time it would take is estimated
    from the last one's (scaled by ``relative_cost``); one that would end past the budget is
    skipped and recorded as such, and the best so far is kept."""
    if not candidates:
        raise ConfigError("tune needs at least one candidate")
    started, rows, ran_out, per_cost = clock(), [], False, None
    for candidate in candidates:
        elapsed = clock() - started
        if per_cost is not None and elapsed + per_cost * candidate.relative_cost > budget_seconds:
            ran_out = True
            rows.append({"candidate": candidate.name, "relative_cost": candidate.relative_cost,
                         "skipped": f"would pass the {budget_seconds:g} s tuning budget"})
            log(f"tune: skipped {candidate.name!r}: would pass the {budget_seconds:g} s budget")
            continue
        t0 = clock()
        metrics = dict(evaluate(candidate))
        seconds = clock() - t0
        per_cost = seconds / max(candidate.relative_cost, 1e-9)
        row = {"candidate": candidate.name, "relative_cost": candidate.relative_cost,
               **metrics, "seconds": round(seconds, 1)}
        row["selection_score"] = selection_score(row)
        rows.append(row)
        log(f"tune: {candidate.name}: image AUROC {_f(row.get('image_auroc'))}, pixel AUROC "
            f"{_f(row.get('pixel_auroc'))} ({seconds:.0f} s)")
    best = choose(rows)
    chosen = next(c for c in candidates if c.name == best["candidate"])
    return chosen, rows, ran_out


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _small(array: np.ndarray, interpolation: int) -> np.ndarray:
    h, w = array.shape[:2]
    scale = MAX_METRIC_SIDE / max(h, w)
    if scale >= 1:
        return array
    return cv2.resize(array, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=interpolation)


def _group_metrics(scores, maps, masks, n_goods: int, start: int, stop: int) -> dict[str, Any]:
    from defectscope.evaluation.metrics import auroc
    from defectscope.evaluation.pixel_metrics import pixel_auroc

    take = list(range(n_goods)) + list(range(start, stop))
    group_masks = [masks[i] for i in take]
    has_pixels = any(m is not None and m.any() for m in group_masks)
    return {"image_auroc": auroc([scores[i] for i in take], [i >= n_goods for i in take]),
            "pixel_auroc": (pixel_auroc([maps[i] for i in take], group_masks)
                            if has_pixels else None)}


def anomaly_metrics(model, goods: Sequence[np.ndarray],
                    defects: Sequence[tuple[np.ndarray, np.ndarray | None]],
                    real_defects: Sequence[tuple[np.ndarray, np.ndarray | None]] = ()
                    ) -> dict[str, Any]:
    """Image and pixel AUROC of a fitted anomaly model on good images against (image, mask)
    ``defects`` (a defect without a mask counts for the image AUROC only); with
    ``real_defects``, the same against those as ``real_image_auroc`` / ``real_pixel_auroc``."""
    scores, maps, masks = [], [], []
    items = [(g, np.zeros(g.shape[:2], bool)) for g in goods] + list(defects) + list(real_defects)
    for image, mask in items:
        score, anomaly_map, _ = model.anomaly(image)
        scores.append(score)
        trim_every(len(scores))
        maps.append(_small(anomaly_map.astype(np.float32), cv2.INTER_AREA))
        masks.append(None if mask is None else _small(mask.astype(np.uint8), cv2.INTER_NEAREST) > 0)
    n, d = len(goods), len(defects)
    metrics = _group_metrics(scores, maps, masks, n, n, n + d) if d else {}
    if real_defects:
        real = _group_metrics(scores, maps, masks, n, n + d, len(items))
        metrics.update({f"real_{key}": value for key, value in real.items()})
    return metrics


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"unknown tune mode {mode!r}; choose from {', '.join(MODES)}")
    return mode
