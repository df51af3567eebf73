"""Everything but the torch side must run on an edge box without torch.

The torch side is a rule about folders, not a list of modules: the packages in ``TORCH_SIDE``
(the models and their networks, the training loops, the export). The test walks the whole
package, so a new module is covered the day it is written: every module outside those folders
is imported in a fresh interpreter in which ``import torch`` fails.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import defectscope

TORCH_SIDE = ("defectscope.models", "defectscope.training", "defectscope.export")
NOT_IMPORTABLE = ("defectscope.__main__",)  # runs the CLI when imported


def torch_free_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(defectscope.__path__, "defectscope.")]
    return sorted(name for name in names if name not in NOT_IMPORTABLE
                  and not any(name == side or name.startswith(side + ".")
                              for side in TORCH_SIDE))


def test_the_walk_finds_the_edge_side_and_leaves_out_the_torch_side():
    modules = torch_free_modules()
    for expected in ("defectscope.runtime.engine", "defectscope.scoring.heads",
                     "defectscope.scoring.predictor", "defectscope.line.runner",
                     "defectscope.service.app", "defectscope.store.results"):
        assert expected in modules
    assert not [m for m in modules if m.startswith(TORCH_SIDE)]
    assert len(modules) > 100


def test_every_module_outside_the_torch_side_imports_without_torch():
    code = ("import importlib, sys\n"
            "class NoTorch:  # import torch (or torchvision) now raises ImportError\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
            "            raise ImportError(f'{name} is not installed on this edge box')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "failed = []\n"
            f"for name in {torch_free_modules()!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError as error:\n"
            "        failed.append(f'{name}: {error}')\n"
            "assert not failed, failed\n"
            "assert 'torch' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
