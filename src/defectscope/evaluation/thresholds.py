"""Threshold calibration: turn validation scores into one decision threshold, and record why.

A threshold is only as trustworthy as the rule and the data behind it, so the result is a
``ThresholdCalibration`` record (rule, target, counts, what it achieved on these scores, and a
plain-language note) that travels with the model bundle and into reports.

Rules (a part is rejected when ``score >= threshold``):

- ``"good_quantile"``: good images only; ``target`` is the allowed false-reject rate (default
  0.01). With ``k = floor(target * n_good)`` goods allowed above it, the threshold is the midpoint
  between the k-th and (k+1)-th highest good scores (one fewer if those tie), or the next float
  above the highest good score when k is 0. The achieved false-reject rate is always <= target.
- ``"recall"``: needs defects; ``target`` is the recall (default 1.0: every validation defect
  caught). The threshold lies midway between the ``ceil(target * n_defect)``-th highest defect
  score and the next lower score of any image, so it does not sit on a sample.
- ``"f1_max"``: needs defects; the threshold of best F1, placed midway below that score likewise.
- ``"synthetic_balanced"``: good images plus synthetic defects pasted into held-back good images
  (``tuning.synthetic``); the threshold of best balanced accuracy between the two (Youden's J:
  synthetic recall minus false-reject rate, which F1 would let the count of synthetic defects
  tilt), the highest on a tie, placed midway below that score; ``target`` (default 0.2) is the
  highest false-reject rate on the good validation images it may accept. Used when validation has no real defect: the threshold then weighs what a defect looks
  like instead of sitting just above the highest good score (which caught 1 of 52 real cracks).
- ``"balanced"``: the same best balanced accuracy (Youden J, at most ``target`` = 0.2 of the goods
  rejected), between the good and the real defective validation images. For a model learnt from
  good images, where the few real defects are a sample of what may come and not the whole of
  it, this is the rule ``auto`` takes with real defects (``calibrate_threshold(...,
  auto_with_defects="balanced")``): ``recall`` 1.0 there rejected 0.35 to 0.9 of the good test
  parts to catch the last validation defect.
- ``"auto"``: with real defects, ``auto_with_defects`` (``recall`` with target 1.0 by default, the
  supervised models' rule; ``balanced`` for anomaly models), else ``synthetic_balanced`` when
  synthetic scores are given, else ``good_quantile`` 0.01.

The UNSURE band (``unsure_band``, relative: UNSURE while ``|score - threshold| < band *
threshold``) is sized from the same two score distributions, goods against the defects (real
where present, else synthetic): the band holds half the validation images the threshold gets
wrong (false rejects and escapes), so those go to a person instead of being decided, but sends at
most ``MAX_UNSURE_GOODS`` (10%) of the good images to review; where the threshold gets none wrong,
it is half the gap between the highest good and the lowest defect score. Without any defect
score, or with fewer than 10 good images, it is None and the model keeps its default band.

Every record carries the false-reject rate measured on the good images with its 95% Wilson
interval (few goods, wide interval: the record says how few), and with synthetic defects their
share caught (``synthetic_recall``): an estimate, since real defects can be subtler.

>>> cal = calibrate_threshold([0.1, 0.2, 0.25, 0.75], [False, False, False, True])
>>> cal.rule, cal.threshold, cal.achieved_recall, cal.achieved_false_reject_rate
('recall', 0.5, 1.0, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike

from defectscope.errors import ConfigError, DataError
from defectscope.evaluation.metrics import f1_max, validate_scores

__all__ = ["RULES", "ThresholdCalibration", "calibrate_threshold"]

RULES = ("auto", "good_quantile", "recall", "f1_max", "synthetic_balanced", "balanced")
MAX_UNSURE_GOODS = 0.1  # the UNSURE band sends at most this share of good images to a person
MAX_UNSURE_BAND = 0.5   # and is never wider than threshold * (1 +/- this)
_EPS = 1e-9  # absorbs float noise in target * n, e.g. 0.29 * 100 = 28.999999999999996


@dataclass(frozen=True)
class ThresholdCalibration:
    """How a threshold was chosen and what it achieved on the calibration scores."""

    rule: str
    target: float | None
    threshold: float
    n_good: int
    n_defect: int
    achieved_false_reject_rate: float
    achieved_recall: float | None
    note: str
    false_reject_rate_ci: tuple[float, float] | None = None
    n_synthetic: int = 0
    synthetic_recall: float | None = None
    unsure_band: float | None = None
    unsure_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        if self.false_reject_rate_ci is not None:
            row["false_reject_rate_ci"] = list(self.false_reject_rate_ci)
        return row

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "ThresholdCalibration":
        target, recall = row.get("target"), row.get("achieved_recall")
        return cls(
            rule=str(row["rule"]),
            target=None if target is None else float(target),
            threshold=float(row["threshold"]),
            n_good=int(row["n_good"]),
            n_defect=int(row["n_defect"]),
            achieved_false_reject_rate=float(row["achieved_false_reject_rate"]),
            achieved_recall=None if recall is None else float(recall),
            note=str(row.get("note", "")),
            false_reject_rate_ci=(None if row.get("false_reject_rate_ci") is None
                                  else tuple(float(v) for v in row["false_reject_rate_ci"])),
            n_synthetic=int(row.get("n_synthetic", 0)),
            synthetic_recall=(None if row.get("synthetic_recall") is None
                              else float(row["synthetic_recall"])),
            unsure_band=(None if row.get("unsure_band") is None
                         else float(row["unsure_band"])),
            unsure_note=str(row.get("unsure_note", "")),
        )


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``hits / n`` (95% by default).

    >>> wilson_interval(0, 35)[1] > 0.09  # no false reject in 35 goods still allows ~10%
    True
    """
    if n <= 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _between(lower: float, upper: float) -> float:
    """A value in ``(lower, upper]``: the midpoint, or ``upper`` when the two are adjacent floats."""
    mid = lower + (upper - lower) / 2.0
    return float(mid) if lower < mid else float(upper)


def _below(score: float, scores: np.ndarray) -> float:
    """A threshold that still catches ``score`` but sits midway to the next lower score, if any."""
    lower = scores[scores < score]
    return _between(float(lower.max()), score) if lower.size else float(score)


def _good_quantile(good: np.ndarray, target: float) -> tuple[float, str]:
    ranked = np.sort(good)[::-1]
    allowed = min(math.floor(target * ranked.size + _EPS), ranked.size - 1)
    rejected = allowed
    while rejected > 0 and ranked[rejected - 1] == ranked[rejected]:
        rejected -= 1  # a tie straddles the cut: reject fewer rather than too many
    if rejected == 0:
        threshold = float(np.nextafter(ranked[0], np.inf))
    else:
        threshold = _between(float(ranked[rejected]), float(ranked[rejected - 1]))
    note = f"{rejected} of {ranked.size} good images score at or above the threshold"
    if allowed == 0 and target > 0:
        needed = math.ceil(1.0 / target - _EPS)
        note += (
            f"; only {ranked.size} good images, too few to resolve a false-reject rate of "
            f"{target:g} (needs at least {needed}): the threshold sits just above the highest "
            "good score"
        )
    elif rejected < allowed:
        note += f"; tied good scores kept it below the {allowed} allowed"
    return threshold, note


def unsure_band(threshold: float, good: np.ndarray, defect: np.ndarray
                ) -> tuple[float | None, str]:
    """The relative UNSURE band around ``threshold`` from good and defect scores (see the module
    docstring): (band, note), or (None, why) without both kinds of score or with a threshold
    that is not positive."""
    if not defect.size:
        return None, "no defect scores to size the UNSURE band from"
    needed = math.ceil(1 / MAX_UNSURE_GOODS - _EPS)
    if good.size < needed:
        return None, (f"only {good.size} good validation images, too few to size the UNSURE "
                      f"band (needs {needed}): the model's default band is kept")
    if not threshold > 0:
        return None, f"threshold {threshold:g} is not positive, so a relative band is undefined"
    distance = np.abs(np.concatenate([good, defect]) - threshold) / threshold
    wrong = np.concatenate([good >= threshold, defect < threshold])
    if wrong.any():
        band = float(np.median(distance[wrong])) * (1 + 1e-9)  # the median error is inside
        why = f"holds half of the {int(wrong.sum())} validation images the threshold gets wrong"
    else:
        band = 0.5 * float(defect.min() - good.max()) / threshold
        why = "no validation image is wrong at the threshold: half the gap between the classes"
    good_distance = np.sort(distance[:good.size])
    allowed = math.floor(MAX_UNSURE_GOODS * good.size + _EPS)
    if allowed < good.size and band > good_distance[allowed]:
        band = float(good_distance[allowed])  # the (allowed+1)-th nearest good stays decided
        why += f", narrowed so at most {allowed} of {good.size} goods are sent to review"
    if band > MAX_UNSURE_BAND:
        band, why = MAX_UNSURE_BAND, why + f", capped at {MAX_UNSURE_BAND:g}"
    inside = distance < band
    caught = int(np.sum(inside & wrong))
    note = (f"UNSURE band {band:.3g} x threshold: {why}; on validation it sends "
            f"{int(inside[:good.size].sum())} of {good.size} goods and "
            f"{int(inside[good.size:].sum())} of {defect.size} defects to review and holds "
            f"{caught} of {int(wrong.sum())} errors")
    return band, note


def _balanced(good: np.ndarray, defect: np.ndarray, max_false_reject: float, kind: str
              ) -> tuple[float, str]:
    """The threshold of best balanced accuracy (Youden's J: recall on the ``kind`` defects,
    "synthetic" or "real", minus false-reject rate), so the count of defects against goods does
    not tilt it; the highest such threshold on a tie (fewer false rejects), placed midway below
    that score. Thresholds that reject more than ``max_false_reject`` of the goods are not
    considered: where the defects hardly separate from the goods, the best J would reject most
    good parts."""
    both = np.concatenate([good, defect])
    candidates = np.append(np.unique(both), np.nextafter(good.max(), np.inf))
    recall = (defect[None, :] >= candidates[:, None]).mean(axis=1)
    false_rejects = (good[None, :] >= candidates[:, None]).mean(axis=1)
    j = np.where(false_rejects <= max_false_reject + _EPS, recall - false_rejects, -np.inf)
    index = int(np.flatnonzero(j >= j.max() - 1e-12)[-1])
    best = float(candidates[index])
    threshold = best if index == candidates.size - 1 else _below(best, both)
    note = (f"best balanced accuracy (Youden J {j.max():.3f}) between {good.size} good images "
            f"and {defect.size} {kind} defects, rejecting at most {max_false_reject:g} of "
            "the goods")
    return threshold, note


def _recall(scores: np.ndarray, defect: np.ndarray, target: float) -> tuple[float, str]:
    ranked = np.sort(defect)[::-1]
    needed = max(1, math.ceil(target * ranked.size - _EPS))
    threshold = _below(float(ranked[needed - 1]), scores)
    return threshold, f"catches at least {needed} of {ranked.size} validation defects"


def _check_target(rule: str, target: float | None) -> float | None:
    if target is None:
        return {"good_quantile": 0.01, "recall": 1.0, "synthetic_balanced": 0.2,
                "balanced": 0.2}.get(rule)
    if rule in ("synthetic_balanced", "balanced") and not 0.0 <= float(target) < 1.0:
        raise ConfigError(f"{rule} target is the highest false-reject rate accepted "
                          f"on the good validation images, in [0, 1), got {target}")
    if rule in ("auto", "f1_max"):
        raise ConfigError(f"rule {rule!r} takes no target; use 'good_quantile' or 'recall' to set one")
    target = float(target)
    if rule == "good_quantile" and not 0.0 <= target < 1.0:
        raise ConfigError(f"good_quantile target is a false-reject rate in [0, 1), got {target}")
    if rule == "recall" and not 0.0 < target <= 1.0:
        raise ConfigError(f"recall target must be in (0, 1], got {target}")
    return target


def calibrate_threshold(
    scores: ArrayLike, is_defect: ArrayLike, rule: str = "auto", target: float | None = None,
    synthetic_scores: ArrayLike = (), auto_with_defects: str = "recall",
) -> ThresholdCalibration:
    """Choose a threshold from validation scores by ``rule`` (see the module docstring).

    ``synthetic_scores`` are the scores of synthetic defects (used by ``synthetic_balanced``, and by
    ``auto`` when the validation scores hold no real defect). Raises ``ConfigError`` for an
    unknown rule or a target out of range, and ``DataError`` when the rule needs images the data
    lack (good images for ``good_quantile``, defects for ``recall`` and ``f1_max``, synthetic
    defects for ``synthetic_balanced``). ``auto_with_defects`` is the rule ``auto`` takes when
    real defects are present (``recall`` or ``balanced``).

    >>> calibrate_threshold([0.1, 0.2, 0.3], [False] * 3, rule="good_quantile").threshold > 0.3
    True
    >>> calibrate_threshold([0.1, 0.2, 0.3, 0.5], [False] * 4, rule="synthetic_balanced",
    ...                     target=0.25, synthetic_scores=[0.45, 0.6, 0.7]).threshold  # below the top good
    0.375
    """
    if rule not in RULES:
        raise ConfigError(f"unknown threshold rule {rule!r}; known rules: {', '.join(RULES)}")
    s, y = validate_scores(scores, is_defect)
    synthetic = np.asarray(synthetic_scores, dtype=np.float64).ravel()
    if synthetic.size and not np.isfinite(synthetic).all():
        raise DataError("synthetic defect scores must be finite numbers")
    good, defect = s[~y], s[y]
    target = _check_target(rule, target)
    chosen_by = ""
    if auto_with_defects not in ("recall", "balanced"):
        raise ConfigError(f"auto_with_defects must be 'recall' or 'balanced', not "
                          f"{auto_with_defects!r}")
    if rule == "auto":
        rule = (auto_with_defects if defect.size else "synthetic_balanced" if synthetic.size
                else "good_quantile")
        target = _check_target(rule, None)
        why = ("real defects present" if defect.size else
               "no real defects; synthetic defects given" if synthetic.size else "no defects")
        chosen_by = f"auto chose {rule!r} ({why}); "
    if rule == "good_quantile":
        if not good.size:
            raise DataError("rule 'good_quantile' needs good images among the calibration scores")
        threshold, note = _good_quantile(good, float(target))
    elif rule == "synthetic_balanced":
        if not synthetic.size or not good.size:
            raise DataError("rule 'synthetic_balanced' needs good scores and synthetic defect scores")
        threshold, note = _balanced(good, synthetic, float(target), "synthetic")
    else:
        if not defect.size:
            raise DataError(f"rule {rule!r} needs defective images among the calibration scores")
        if not good.size and rule == "balanced":
            raise DataError("rule 'balanced' needs good images among the calibration scores")
        if rule == "balanced":
            threshold, note = _balanced(good, defect, float(target), "real")
        elif rule == "recall":
            threshold, note = _recall(s, defect, float(target))
        else:
            best_f1, best = f1_max(s, y)
            threshold, note = _below(best, s), f"best F1 {best_f1:.4f} on the calibration scores"
    false_rejects = int(np.sum(good >= threshold))
    frr = false_rejects / good.size if good.size else 0.0
    recall = float(np.mean(defect >= threshold)) if defect.size else None
    if not good.size:
        note += "; no good images, so the false-reject rate is unknown (reported as 0)"
    elif good.size < 100:
        low, high = wilson_interval(false_rejects, good.size)
        note += (f"; only {good.size} good images: the false-reject rate is known to within "
                 f"{low:.3f}-{high:.3f} (95%)")
    if defect.size and defect.size < 20:
        note += f"; only {defect.size} real defects to calibrate on"
    band, band_note = unsure_band(threshold, good, defect if defect.size else synthetic)
    return ThresholdCalibration(
        rule=rule,
        target=target,
        threshold=threshold,
        n_good=int(good.size),
        n_defect=int(defect.size),
        achieved_false_reject_rate=float(frr),
        achieved_recall=recall,
        note=chosen_by + note,
        false_reject_rate_ci=wilson_interval(false_rejects, good.size) if good.size else None,
        n_synthetic=int(synthetic.size),
        synthetic_recall=float(np.mean(synthetic >= threshold)) if synthetic.size else None,
        unsure_band=band,
        unsure_note=band_note,
    )
