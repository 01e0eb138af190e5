"""One home for each default that the CLI, the app and the library share.

Plain constants only: no numpy, no torch. ``clay-explore --help`` builds every option from this module,
so the CLI starts without importing the heavy libraries; the library modules import their defaults
from here (and keep exporting them under the same names), so a default is typed exactly once.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------------- imagery
#: Pixels per chip side: Clay's training chips.
DEFAULT_CHIP_SIZE = 256
#: Drop chips with less than this share of valid pixels.
DEFAULT_MIN_VALID = 0.5
#: Drop chips with more than this share of their valid pixels cloudy (when a cloud mask exists).
DEFAULT_MAX_CHIP_CLOUD = 0.5
#: Cap on each side of a fetched area, kilometres.
DEFAULT_MAX_KM = 30.0
#: Side of one request of a tiled fetch (imagery.tiles), km: larger areas are split into tiles this size.
DEFAULT_TILE_KM = DEFAULT_MAX_KM
#: Cap on each side of a whole tiled area, km (about 150 x 150 chips of 256 px at 10 m).
DEFAULT_MAX_AREA_KM = 400.0
#: STAC collection searched by default (Earth Search v1).
DEFAULT_COLLECTION = "sentinel-2-l2a"
#: Scene-level cloud cover limit, percent.
DEFAULT_MAX_CLOUD = 20.0
#: Seconds per network request, and retries per request.
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3

# ------------------------------------------------------------------------------------------ research
#: Chips per forward pass of Clay (embed, fit, evaluate) and in the app's Embed page.
DEFAULT_BATCH_SIZE = 8
#: Aggregation methods by name, in the order they are shown (``research.aggregate.AGGREGATORS`` has the
#: classes; ``tests/core/test_layout.py`` checks both agree).
METHODS = ("mean", "max", "gem", "cls", "linear", "attention", "perceiver")
#: Training of an aggregator and its expander (``clay-explore fit``).
DEFAULT_EPOCHS = 10
DEFAULT_LR = 3e-3
DEFAULT_SEED = 0
#: Initialisation seeds each method is fitted with (`fit --seeds`), and the seed of the spatially blocked
#: train / val / test split (`fit --split-seed`), kept apart so the two sources of variance can be told apart.
DEFAULT_FIT_SEEDS = 3
DEFAULT_SPLIT_SEED = 0
LOSSES = ("l1", "mse")
DEFAULT_LOSS = "mse"
#: Neighbours for neighbourhood preservation (NP@k) and kNN agreement.
DEFAULT_K = 10

# ------------------------------------------------------------------------------------ views / export
#: UMAP distance metrics offered by the Projections page and `clay-explore project`.
UMAP_METRICS = ("euclidean", "cosine", "manhattan", "correlation")
#: The fields of ``research.projection.UmapParams``.
UMAP_N_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1
UMAP_METRIC = UMAP_METRICS[0]
UMAP_SEED = 42  # None: faster (parallel) but not reproducible
UMAP_PCA_COMPONENTS = 50  # 0: UMAP on the raw vectors
UMAP_MAX_POINTS = 100_000  # patches are subsampled (seeded) beyond this
#: What `clay-explore export` writes, and the formats of the patch embeddings.
EXPORT_WHAT = ("image", "patches", "reconstructions", "evaluation")
PATCH_FORMATS = ("zarr", "parquet")
