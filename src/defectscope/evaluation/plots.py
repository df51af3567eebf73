"""PNG plots for evaluation reports: ROC, precision-recall, score histograms, worst-case overlays.

Every function draws on its own ``matplotlib.figure.Figure`` with the Agg canvas, never pyplot,
so no global state is touched and it works headless and in threads. Each writes one PNG
(creating its folder) and returns the path, or ``None`` when there is nothing meaningful to draw
(a ROC curve without both classes, overlays without anomaly maps).

>>> plot_roc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], tmp_path / "roc.png")  # doctest: +SKIP
PosixPath('.../roc.png')
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from defectscope.errors import DefectscopeError
from defectscope.evaluation.metrics import auroc, average_precision, pr_curve, roc_curve
from defectscope.values import GOOD

if TYPE_CHECKING:
    from defectscope.evaluation.report import ImageRecord

__all__ = ["plot_pr", "plot_roc", "plot_score_histograms", "plot_worst_overlays", "worst_records"]


def _new_figure(width: float = 5.0, height: float = 4.0) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", bbox_inches="tight")
    return path


def _both_classes(is_defect: ArrayLike) -> bool:
    flags = np.asarray(is_defect, dtype=bool)
    return bool(flags.any() and not flags.all())


def plot_roc(scores: ArrayLike, is_defect: ArrayLike, path: Path) -> Path | None:
    """ROC curve with its AUROC in the legend; ``None`` unless both classes are present."""
    if not _both_classes(is_defect):
        return None
    fpr, tpr, _ = roc_curve(scores, is_defect)
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot(fpr, tpr, drawstyle="steps-post", label=f"AUROC {auroc(scores, is_defect):.4f}")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="false-reject rate (good parts rejected)", ylabel="recall (defects caught)",
             xlim=(0, 1), ylim=(0, 1.02), title="ROC")
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_tradeoff(scores: ArrayLike, is_defect: ArrayLike, threshold: float, path: Path
                  ) -> Path | None:
    """False-reject rate against escape rate over every threshold, the calibrated one marked;
    ``None`` unless both classes are present."""
    if not _both_classes(is_defect):
        return None
    fpr, tpr, _ = roc_curve(scores, is_defect)
    s, y = np.asarray(scores, float), np.asarray(is_defect, bool)
    here_frr, here_escape = float(np.mean(s[~y] >= threshold)), float(np.mean(s[y] < threshold))
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot(fpr, 1.0 - tpr, drawstyle="steps-post", label="every threshold")
    axes.plot([here_frr], [here_escape], "o", color="black",
              label=f"calibrated {threshold:.4g}: rejects {here_frr:.1%}, lets {here_escape:.1%} "
                    "escape")
    axes.set(xlabel="false-reject rate (good parts rejected)",
             ylabel="escape rate (defects passed)", xlim=(0, 1), ylim=(0, 1.02),
             title="False rejects against escapes")
    axes.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def plot_pr(scores: ArrayLike, is_defect: ArrayLike, path: Path) -> Path | None:
    """Precision-recall curve with average precision; ``None`` without defective images."""
    if not np.asarray(is_defect, dtype=bool).any():
        return None
    precision, recall, _ = pr_curve(scores, is_defect)
    figure = _new_figure()
    axes = figure.add_subplot()
    ap = average_precision(scores, is_defect)
    axes.plot(recall, precision, drawstyle="steps-post", label=f"AP {ap:.4f}")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall")
    axes.legend(loc="lower left")
    return _save(figure, path)


def plot_score_histograms(
    scores: ArrayLike, labels: Sequence[str], threshold: float, path: Path
) -> Path:
    """One step histogram per label on shared bins, with the threshold as a dashed line."""
    values = np.asarray(scores, dtype=np.float64)
    names = np.asarray([str(label) for label in labels], dtype=object)
    finite = np.isfinite(values)
    values, names = values[finite], names[finite]
    figure = _new_figure(6.0, 4.0)
    axes = figure.add_subplot()
    if values.size:
        bins = np.histogram_bin_edges(np.r_[values, threshold], bins=min(50, max(10, values.size // 4)))
        ordered = sorted(set(names.tolist()), key=lambda name: (name != GOOD, name))
        for name in ordered:
            axes.hist(values[names == name], bins=bins, histtype="step", linewidth=1.5,
                      label=f"{name} ({int(np.sum(names == name))})")
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    axes.set(xlabel="anomaly score", ylabel="images", title="Scores by label")
    axes.legend(fontsize="small")
    return _save(figure, path)


def worst_records(
    records: Sequence["ImageRecord"], threshold: float, n: int = 12
) -> list["ImageRecord"]:
    """The records worth looking at first: escapes (defects below the threshold, lowest score
    first), then false rejects (good images at or above it, highest first); without any miss,
    the ``n`` closest calls to the threshold. Only records with an anomaly map count."""
    usable = [r for r in records if r.anomaly_map is not None and np.isfinite(r.score)]
    escapes = [r for r in usable if r.label != GOOD and r.score < threshold]
    rejects = [r for r in usable if r.label == GOOD and r.score >= threshold]
    escapes.sort(key=lambda r: r.score)
    rejects.sort(key=lambda r: -r.score)
    misses = escapes + rejects
    if not misses:
        misses = sorted(usable, key=lambda r: abs(r.score - threshold))
    return misses[:n]


def _load(image_loader: Callable[[str], np.ndarray] | None, path: str) -> np.ndarray | None:
    if image_loader is None:
        return None
    try:
        return np.asarray(image_loader(path))
    except (OSError, ValueError, DefectscopeError):
        return None  # the tile still shows the anomaly map; one unreadable image must not end a report


def caught_records(
    records: Sequence["ImageRecord"], threshold: float, n: int = 8
) -> list["ImageRecord"]:
    """Defects caught (at or above the threshold), taken one defect type at a time in turn so
    every type that was caught shows, the highest score of each type first. Only records with
    an anomaly map count."""
    by_type: dict[str, list] = {}
    for record in records:
        if (record.anomaly_map is not None and np.isfinite(record.score)
                and record.label != GOOD and record.score >= threshold):
            by_type.setdefault(record.label, []).append(record)
    queues = [sorted(group, key=lambda r: -r.score) for _, group in sorted(by_type.items())]
    chosen: list = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def plot_worst_overlays(
    records: Sequence["ImageRecord"],
    threshold: float,
    image_loader: Callable[[str], np.ndarray] | None,
    path: Path,
    n: int = 12,
) -> Path | None:
    """A grid of the worst misses (see ``worst_records``); ``None`` when no record has an
    anomaly map. See ``plot_overlay_grid`` for what each tile shows."""
    return plot_overlay_grid(worst_records(records, threshold, n), image_loader, path,
                             f"Misses (escapes, then false rejects) at threshold {threshold:.4g}")


def plot_caught_overlays(
    records: Sequence["ImageRecord"],
    threshold: float,
    image_loader: Callable[[str], np.ndarray] | None,
    path: Path,
    n: int = 8,
) -> Path | None:
    """A grid of defects caught (see ``caught_records``): where the model saw each defect;
    ``None`` when none was caught."""
    return plot_overlay_grid(caught_records(records, threshold, n), image_loader, path,
                             f"Defects caught at threshold {threshold:.4g}")


def plot_overlay_grid(
    chosen: Sequence["ImageRecord"],
    image_loader: Callable[[str], np.ndarray] | None,
    path: Path,
    title: str,
) -> Path | None:
    """Each record's image with its anomaly map on top (jet, alpha 0.5, one colour scale for all
    tiles), the true mask's outline in white, and label, score and verdict as the tile's title.
    ``image_loader(path)`` returns an RGB or grey array; without it, or when it fails, the tile
    shows the map alone. ``None`` when ``chosen`` is empty."""
    if not chosen:
        return None
    maps = [np.asarray(r.anomaly_map, dtype=np.float32) for r in chosen]
    low = float(min(m.min() for m in maps))
    high = float(max(m.max() for m in maps))
    columns = min(4, len(chosen))
    rows = -(-len(chosen) // columns)
    figure = _new_figure(3.0 * columns, 3.2 * rows)
    for position, (record, amap) in enumerate(zip(chosen, maps), start=1):
        axes = figure.add_subplot(rows, columns, position)
        image = _load(image_loader, record.path)
        if image is not None:
            axes.imshow(image, cmap="gray" if image.ndim == 2 else None)
            if amap.shape != image.shape[:2]:
                size = (image.shape[1], image.shape[0])
                amap = cv2.resize(amap, size, interpolation=cv2.INTER_LINEAR)
        axes.imshow(amap, cmap="jet", alpha=0.5 if image is not None else 1.0, vmin=low, vmax=high)
        if record.mask is not None and np.any(record.mask):
            mask = (np.asarray(record.mask) > 0).astype(np.uint8)
            if mask.shape != amap.shape:
                mask = cv2.resize(mask, (amap.shape[1], amap.shape[0]), interpolation=cv2.INTER_NEAREST)
            axes.contour(mask, levels=[0.5], colors="white", linewidths=1.0)
        verdict = getattr(record.verdict, "value", record.verdict)  # a Verdict or its text
        axes.set_title(f"{record.label} | {record.score:.4g} | {verdict}", fontsize=8)
        axes.set_axis_off()
    figure.suptitle(title)
    return _save(figure, path)
