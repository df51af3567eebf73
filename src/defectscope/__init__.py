"""defectscope: automated visual inspection for manufacturing.

Nothing happens at import: no thread settings, no environment writes, no global state.
The public API lives in the sub-packages; the most used names are re-exported lazily here.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
