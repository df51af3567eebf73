"""The package imports nothing that only the dev extra installs (a user's install lacks it)."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-")
            for r in requirements}


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return modules


def test_no_module_of_the_package_imports_a_dev_only_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    user = _names(project["dependencies"]) | set().union(
        *(_names(reqs) for name, reqs in extras.items() if name != "dev"))
    dev_only = _names(extras["dev"]) - user
    assert "scikit-learn" in dev_only  # the check below has something to find
    providers = packages_distributions()
    offenders = []
    for path in sorted((ROOT / "src" / "defectscope").rglob("*.py")):
        for module in _imported_modules(path):
            dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
            if dists & dev_only:
                offenders.append(f"{path.relative_to(ROOT)} imports {module} ({dists})")
    assert not offenders, offenders
