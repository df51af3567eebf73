"""The contract every model keeps, whatever it learns: one base for the six registered models.

Anomaly, supervised and box models differ in what they learn but inspect and decide the same
way. Each names its network (``network()``: the torch module whose outputs its head reads, which
is also what ``export`` writes to ONNX) and builds its scoring head from its state (``head()``);
``predictor()`` joins the two with the threshold, and ``anomaly`` / ``predict`` go through it, as
the torch-free runtime does with an exported network. A score is decided against one threshold,
with the calibration record that chose it kept beside it for the bundle.

Subclasses provide ``name``, ``config_class`` (a frozen dataclass with ``unsure_band``),
``is_fitted``, ``network``, ``head``, ``fit``, ``arrays`` and ``restore``; one whose scores live in
a fixed range overrides ``_check_threshold``.

>>> class Demo(InspectionModel):
...     name = "demo"
...     is_fitted = True
>>> Demo().set_threshold(0.5, {"rule": "fixed"}).threshold
0.5
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from defectscope.errors import ConfigError, DefectscopeError
from defectscope.scoring.heads import Forward, Head, Timings
from defectscope.scoring.predictor import Predictor
from defectscope.values import InspectionResult


def torch_forward(module: nn.Module, channels_last: bool = False) -> Forward:
    """``module`` as a numpy function (eval mode, no gradients): a float32 batch -> its outputs
    as a tuple of arrays, the form a head takes (like an ONNX Runtime session)."""
    def forward(batch: np.ndarray) -> tuple[np.ndarray, ...]:
        if module.training:  # a training loop may have left it so (eval() costs ~0.4 ms)
            module.eval()
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(batch))
            if channels_last:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            outputs = module(tensor)
        if not isinstance(outputs, (tuple, list)):
            outputs = (outputs,)
        return tuple(output.numpy() for output in outputs)

    return forward


NET_PREFIX = "net."
DEFAULT_UNSURE_BAND = 0.05  # without a configured band and without defect scores to size one


def network_arrays(net: nn.Module) -> dict[str, np.ndarray]:
    """A network's state as ``net.<key>`` numpy arrays, for a safetensors bundle."""
    return {f"{NET_PREFIX}{key}": value.detach().cpu().contiguous().numpy()
            for key, value in net.state_dict().items()}


def load_network_arrays(net: nn.Module, arrays: Mapping[str, np.ndarray], model_name: str
                        ) -> nn.Module:
    """Load the ``net.<key>`` arrays into ``net`` strictly; a mismatch is a clear error."""
    state = {key[len(NET_PREFIX):]: torch.from_numpy(np.array(value))
             for key, value in arrays.items() if key.startswith(NET_PREFIX)}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise DefectscopeError(f"saved network does not match {model_name}: {error}") from error
    return net.eval()


class InspectionModel:
    """The shared base (see the module docstring)."""

    name: ClassVar[str] = ""
    channels_last: ClassVar[bool] = False  # feed the network channels-last tensors

    # -- what each family provides ------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        raise NotImplementedError

    def network(self) -> nn.Module:
        """The module whose outputs ``head()`` reads (and that ``export`` writes to ONNX)."""
        raise NotImplementedError

    def head(self) -> Head:
        """This model's scoring head over its current learned state."""
        raise NotImplementedError

    # -- inspection ---------------------------------------------------------------------------
    def predictor(self) -> Predictor:
        """The network (as a numpy function), the head and the decision, ready to inspect."""
        self._check_fitted()
        return Predictor(self.name, self.head(),
                         torch_forward(self.network(), self.channels_last), self.threshold,
                         self.unsure_band)

    def anomaly(self, image: np.ndarray, template: np.ndarray | None = None
                ) -> tuple[float, np.ndarray | None, Timings]:
        """(image score, map at the image's size or None, timings ms) of one RGB uint8 image
        (``template``: the part's defect-free template, for a model that compares with one)."""
        return self.predictor().anomaly(image, template)

    def predict(self, image: np.ndarray, template: np.ndarray | None = None) -> InspectionResult:
        """Score, verdict (needs a threshold: see ``set_threshold``) and what else the family
        reports: the anomaly or probability map, the defect type, the boxes, timings."""
        return self.predictor().predict(image, template)

    # -- the decision -------------------------------------------------------------------------
    @property
    def threshold(self) -> float | None:
        return getattr(self, "threshold_", None)

    @property
    def unsure_band(self) -> float:
        """UNSURE while ``|score - threshold| < band * threshold``: the configured band, else
        (``unsure_band=None``) the one calibration sized from the validation scores, else
        ``DEFAULT_UNSURE_BAND``."""
        configured = self.config.unsure_band
        if configured is not None:
            return float(configured)
        sized = (getattr(self, "calibration_", None) or {}).get("unsure_band")
        return DEFAULT_UNSURE_BAND if sized is None else float(sized)

    def _check_threshold(self, threshold: float) -> None:
        if not np.isfinite(threshold):
            raise ConfigError(f"threshold must be a finite number, not {threshold}")

    def set_threshold(self, threshold: float, calibration: Mapping[str, Any] | None = None):
        """Use ``threshold`` from now on; ``calibration`` records how it was chosen."""
        self._check_threshold(threshold)
        self.threshold_ = float(threshold)
        self.calibration_ = dict(calibration or {})
        return self

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise DefectscopeError(f"{self.name} is not fitted: call fit() or load a bundle")
