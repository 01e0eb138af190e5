"""clay-explore: see what the Clay Foundation Model v1.5 keeps and loses in one image embedding.

Subpackages by role (imports flow one way, top to bottom; ``tests/core/test_layout.py`` checks it):
``core`` (workspace, sensors, errors, progress) -> ``model`` / ``imagery`` -> ``research`` (embed, fit,
evaluate, ...) -> ``viz`` (figures, maps) -> ``cli`` and ``app`` (the two front ends).
"""

from pathlib import Path

__version__ = "0.2.0"

#: Small files the package ships (sensor registry, UI assets), installed inside the package.
DATA_DIR = Path(__file__).resolve().parent / "data"
