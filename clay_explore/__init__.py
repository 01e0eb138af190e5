"""clay-explore: see what the Clay Foundation Model v1.5 keeps and loses in one image embedding."""

from pathlib import Path

__version__ = "0.1.0"

#: Folder of small files the app ships (sensor registry, UI assets). Installs are editable.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
