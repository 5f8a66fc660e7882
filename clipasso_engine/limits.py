"""The engine's limits and the names its settings choose from, declared once.

The engine (SketchSettings, the HTTP intake, photo decoding), the CLI and the client read them
from here. The Inkscape extension cannot import the engine, so install.py copies this file beside
it as ``clipasso_limits.py`` (standard library only, Python 3.8 syntax), and the dialogs in
``inx/`` repeat the ones a designer can set; tests/test_limits.py checks those copies are equal.
"""

from typing import Literal, Tuple, get_args

# Presets (their values are in settings.py): "auto" is fast without a GPU, standard with one.
PresetName = Literal["auto", "fast", "standard", "paper"]
PRESET_NAMES: Tuple[str, ...] = get_args(PresetName)
DeviceName = Literal["auto", "cpu", "cuda", "mps"]          # auto: CUDA, else MPS, else the CPU
DEVICE_NAMES: Tuple[str, ...] = get_args(DeviceName)
AugStreamName = Literal["run", "seed"]                     # one augmentation stream per run, or per seed
AUG_STREAM_NAMES: Tuple[str, ...] = get_args(AugStreamName)

# One sketch's settings.
MAX_STROKES = 256                 # strokes of one level, and init strokes of a refine
MAX_ITERATIONS = 20000
MAX_SEEDS = 16                    # random starts run together
MAX_SEED = 2**31 - 1              # the largest first seed
MAX_WIDTH = 50.0                  # stroke width, pixels of the 224-px canvas
MAX_AUGMENTATIONS = 16            # augmented pairs per step
MAX_AUG_BANK = 1024               # augmentations drawn once per run
MAX_LOSS_WEIGHT = 1000.0          # far above any useful weight; larger ones overflow the loss to infinity
MAX_BATCH_STROKES = 1024          # strokes optimized together in one job: sum of the levels × seeds

# Drawn regions.
RegionRole = Literal["subject", "detail", "avoid"]
REGION_ROLES: Tuple[str, ...] = get_args(RegionRole)
MAX_REGIONS = 100                 # polygons per sketch
MAX_VERTICES = 10_000             # per polygon: a curve flattened to 0.5 px needs far fewer

# Photos.
MIN_SIDE = 8                      # smaller photos have nothing to sketch
MAX_PIXELS = 64_000_000           # decoded pixels; larger files are refused before decoding
MAX_FILE_BYTES = 100 * 2**20      # an image file
MAX_DECODED_PIXELS = 4_000_000    # what a photo is decoded (or reduced) to: far more than a 224-px canvas needs
MAX_REQUEST_BYTES = 30 * 2**20    # an HTTP request body: a photo of ~22 MB as base64, plus settings
