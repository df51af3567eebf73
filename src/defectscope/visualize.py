"""Anomaly maps drawn over their images (OpenCV only, so the runtime can use it too)."""

from __future__ import annotations

import cv2
import numpy as np


def overlay_heatmap(image: np.ndarray, anomaly_map: np.ndarray, vmax: float,
                    alpha: float = 0.5) -> np.ndarray:
    """RGB uint8 image with the map in the JET colours; ``vmax`` (e.g. 2x the threshold) is red.

    Using a fixed scale tied to the threshold, not each map's own maximum, keeps a good part's
    overlay blue instead of painting its largest noise red.
    """
    scaled = np.clip(anomaly_map / max(vmax, 1e-12), 0.0, 1.0)
    colours = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image, 1.0 - alpha, colours, alpha, 0.0)


def write_rgb_png(path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")
