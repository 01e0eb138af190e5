"""The package's architecture holds: imports flow one way (core -> model/imagery -> research -> viz -> cli/app),
only the app imports Streamlit, and the CLI starts without torch.

Imports are read with ``ast`` (also those inside functions), so a lazy import cannot hide a wrong direction.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import clay_explore

PACKAGE_DIR = Path(clay_explore.__file__).resolve().parent
PACKAGE = "clay_explore"
STREAMLIT_MODULES = ("streamlit", "streamlit_folium")

#: subpackage -> subpackages of clay_explore it must never import.
FORBIDDEN = {
    "core": ("model", "imagery", "research", "viz", "app", "cli"),
    "model": ("imagery", "research", "viz", "app", "cli"),
    "imagery": ("model", "research", "viz", "app", "cli"),
    "research": ("viz", "app", "cli"),
    "viz": ("app", "cli"),
    "cli": ("app",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path).split(".")
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            out.extend(f"{mod}.{alias.name}" for alias in node.names)  # `from clay_explore import app`
    return out


def _sources() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def _subpackage(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE_DIR).parts
    return rel[0] if len(rel) > 1 else None


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_package_has_the_layout_the_docs_describe() -> None:
    for sub in FORBIDDEN:
        assert (PACKAGE_DIR / sub / "__init__.py").is_file(), sub


def test_only_the_app_imports_streamlit() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE_DIR)}: {mod}"
        for path in _sources()
        if _subpackage(path) != "app"
        for mod in _imports(path)
        if _top(mod) in STREAMLIT_MODULES
    ]
    assert not offenders, "library modules must not import Streamlit:\n" + "\n".join(offenders)


@pytest.mark.parametrize("sub", sorted(FORBIDDEN))
def test_imports_flow_one_way(sub: str) -> None:
    banned = tuple(f"{PACKAGE}.{b}" for b in FORBIDDEN[sub])
    offenders = [
        f"{path.relative_to(PACKAGE_DIR)}: {mod}"
        for path in _sources()
        if _subpackage(path) == sub
        for mod in _imports(path)
        if mod in banned or mod.startswith(tuple(f"{b}." for b in banned))
    ]
    assert not offenders, f"clay_explore.{sub} imports what it must not:\n" + "\n".join(offenders)


def test_cli_starts_without_torch_numpy_or_streamlit() -> None:
    """`clay-explore --help` must stay fast: building the commands imports none of the heavy libraries."""
    code = (
        "import sys, clay_explore.cli.main as m; "
        "m.cli.to_info_dict(__import__('click').Context(m.cli)); "
        "print(','.join(sorted(n for n in ('torch', 'numpy', 'streamlit', 'rasterio', 'zarr', 'umap') "
        "if n in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing the CLI imported: {out.stdout.strip()}"


def test_method_names_of_the_cli_match_the_aggregators() -> None:
    from clay_explore.core.defaults import METHODS
    from clay_explore.research.aggregate import AGGREGATORS

    assert tuple(AGGREGATORS) == METHODS
