"""SketchSettings: every knob of a sketch with its default (docs/method.md), presets and validation.

Field names are the CLI flag names and the HTTP/extension parameter names. A preset fills the
fields the caller did not set; a field set explicitly always wins.
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.functional_validators import ModelWrapValidatorHandler   # not exported at the top before 2.10

from .limits import (
    DEVICE_NAMES, MAX_AUG_BANK, MAX_AUGMENTATIONS, MAX_ITERATIONS, MAX_LOSS_WEIGHT, MAX_SEED, MAX_SEEDS, MAX_STROKES,
    MAX_WIDTH, AugStreamName, DeviceName, PresetName,
)
from .region_spec import Region, check_regions

# docs/method.md §5. `patience` is counted in evaluations (eval_every iterations each) and
# `min_improvement` is relative: the run stops when the best eval loss of every seed has not
# dropped by that fraction for `patience` evaluations.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"iterations": 500, "seeds": 1, "aug_bank": 64, "early_stop": True, "patience": 10,
             "aug_passes": 1, "aug_streams": "run"},
    "standard": {"iterations": 2000, "seeds": 3, "aug_bank": 64, "early_stop": True, "patience": 20,
                 "aug_passes": 1, "aug_streams": "run"},
    "paper": {"iterations": 2001, "seeds": 3, "aug_bank": 0, "early_stop": False, "patience": 20,
              "aug_passes": 2, "aug_streams": "seed"},
}
PRESET_FIELDS = tuple(PRESETS["fast"])    # the fields a preset fills when the caller leaves them out
# docs/method.md §9: the avoid penalty is the inked fraction of the canvas inside the avoid zones
# (weighted deeper inside). At 100, one 3-px stroke 50 canvas px long at a zone's edge adds ~0.3,
# more deeper in; Adam moves points at ~lr px per step whatever the scale, so the weight only
# decides where CLIP and the penalty disagree, and strokes outside the zones feel nothing.
DEFAULT_AVOID_WEIGHT = 100.0


def _from_preset(name: str, what: str) -> str:
    """A preset-filled field's description: what it is and each preset's value."""
    values = ", ".join(f"{preset} {PRESETS[preset][name]}" for preset in PRESETS)
    return f"{what} (preset: {values})"


def default_clip() -> str:
    """The CLIP model for the loss: ``CLIPASSO_CLIP`` if set (a name, a file or ``random:ARCH``), else RN101."""
    return os.environ.get("CLIPASSO_CLIP") or "RN101"


def default_saliency_clip() -> str:
    """The CLIP ViT for the saliency map: ``CLIPASSO_SALIENCY_CLIP`` if set, else ViT-B-32."""
    return os.environ.get("CLIPASSO_SALIENCY_CLIP") or "ViT-B-32"


class SketchSettings(BaseModel):
    """Settings of one sketch. Widths are in pixels of the 224-px CLIP canvas (long side)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    strokes: int = Field(16, ge=1, le=MAX_STROKES, description="number of strokes")
    levels: Optional[list[int]] = Field(
        None, description="several stroke counts (abstraction levels) in one run, e.g. [4, 8, 16, 32]; overrides strokes"
    )
    preset: PresetName = Field(           # once validated, never "auto": the preset it resolved to
        "auto", description="auto (fast without a GPU, standard with one), fast (CPU-friendly), standard, or paper "
                            "(the paper's settings)"
    )
    iterations: int = Field(PRESETS["fast"]["iterations"], ge=1, le=MAX_ITERATIONS,
                            description=_from_preset("iterations", "optimization steps"))
    seeds: int = Field(PRESETS["fast"]["seeds"], ge=1, le=MAX_SEEDS,
                       description=_from_preset("seeds", "random starts run together; the best is kept"))
    seed: int = Field(0, ge=0, le=MAX_SEED, description="first seed; the others are seed + 1000, seed + 2000, …")
    device: DeviceName = Field("auto", description="where to compute")
    clip: str = Field(default_factory=default_clip, description="CLIP for the loss: name, weights file or random:ARCH")
    saliency_clip: str = Field(default_factory=default_saliency_clip, description="CLIP ViT for the saliency map: name, weights file or random:ARCH")
    width: float = Field(3.0, gt=0, le=MAX_WIDTH, description="visible stroke width in pixels of the 224-px canvas")
    augmentations: int = Field(4, ge=0, le=MAX_AUGMENTATIONS, description="augmented pairs per step beside the plain pair")
    aug_bank: int = Field(PRESETS["fast"]["aug_bank"], ge=0, le=MAX_AUG_BANK,
                          description=_from_preset("aug_bank", "augmentation bank size; 0 = fresh random each step"))
    aug_passes: int = Field(PRESETS["fast"]["aug_passes"], ge=1, le=2, description=_from_preset(
        "aug_passes", "resamplings per augmentation: 1 = perspective and crop as one warp, 2 = one after the other "
                      "as the reference"))
    aug_streams: AugStreamName = Field(PRESETS["fast"]["aug_streams"], description=_from_preset(
        "aug_streams", "augmentation draws: one random stream for the run, or one per seed as the reference"))
    early_stop: bool = Field(PRESETS["fast"]["early_stop"],
                             description=_from_preset("early_stop", "stop when the loss stops improving"))
    patience: int = Field(PRESETS["fast"]["patience"], ge=1, le=1000,
                          description=_from_preset("patience", "evaluations without improvement before stopping"))
    min_improvement: float = Field(1e-3, ge=0, le=1, description="relative drop of the best loss that counts as improvement")
    eval_every: int = Field(10, ge=1, le=1000, description="iterations between evaluations of the plain pair")
    lr: float = Field(1.0, gt=0, le=100, description="Adam learning rate on control points (pixels)")
    mask: bool = Field(False, description="remove the background before sketching (needs a mask)")
    saliency: bool = Field(True, description="start strokes at salient edges (else uniformly at random)")
    geometric_weights: dict[str, float] = Field(
        default_factory=lambda: {"layer2": 1.0, "layer3": 1.0}, description="weight per RN101 stage of the L2 feature loss"
    )
    semantic_weight: float = Field(0.1, ge=0, le=MAX_LOSS_WEIGHT, allow_inf_nan=False,
                                   description="weight of 1 - cosine of the CLIP embeddings")
    regions: list[Region] = Field(
        default_factory=list, description="drawn regions: [{role: subject|detail|avoid, polygon: [[x, y], ...]}] in photo pixels, even-odd fill"
    )
    detail_weight: float = Field(4.0, ge=1, le=100, allow_inf_nan=False,
                                 description="start probability multiplier inside detail regions")
    avoid_weight: float = Field(DEFAULT_AVOID_WEIGHT, ge=0, le=MAX_LOSS_WEIGHT, allow_inf_nan=False,
                                description="weight of the penalty on ink inside avoid regions")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="CLIP arithmetic: auto = bf16 on CPUs with native bf16, fp16 on CUDA, else fp32; fp32 is the exact reference"
    )

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: Optional[list[int]]) -> Optional[list[int]]:
        if v is None:
            return None
        if not v:
            raise ValueError("levels must list at least one stroke count")
        for n in v:
            if not 1 <= n <= MAX_STROKES:
                raise ValueError(f"each level must be a stroke count from 1 to {MAX_STROKES}, got {n}")
        return sorted(set(v))

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[Region]) -> list[Region]:
        check_regions(v)                   # RegionError is a ValueError: one message naming the polygon
        return v

    @field_validator("geometric_weights")
    @classmethod
    def _stages(cls, v: dict[str, float]) -> dict[str, float]:
        allowed = {"stem", "layer1", "layer2", "layer3", "layer4"}
        bad = set(v) - allowed
        if bad:
            raise ValueError(f"geometric_weights names unknown stages {sorted(bad)}; use {sorted(allowed)}")
        if not all(math.isfinite(w) and 0 <= w <= MAX_LOSS_WEIGHT for w in v.values()):
            raise ValueError(f"geometric_weights must be numbers from 0 to {MAX_LOSS_WEIGHT:g}, got {v}")
        return v

    @model_validator(mode="wrap")
    @classmethod
    def _fill_from_preset(cls, data: Any, handler: ModelWrapValidatorHandler["SketchSettings"]) -> "SketchSettings":
        """Fill the fields the caller left out (or sent as null) from the preset before the fields
        are validated, so every field is a plain value. Preset ``auto`` is resolved here, on the
        machine that validates: the engine's. The filled fields (and an ``auto`` preset) do not
        count as set (``model_fields_set``): a copy validated elsewhere resolves them again."""
        if not isinstance(data, dict):
            return handler(data)
        given = {k: v for k, v in data.items() if v is not None or k not in PRESET_FIELDS}
        preset = given.get("preset", "auto")
        device = given.get("device", "auto")
        if preset == "auto" and isinstance(device, str) and device in DEVICE_NAMES:
            from .devices import auto_preset      # torch: only when a preset is resolved, not for --help

            preset = auto_preset(device)
        filled = [name for name in PRESET_FIELDS if name not in given]
        if isinstance(preset, str) and preset in PRESETS:   # else the field's own check names the bad preset
            given = {**given, "preset": preset, **{name: PRESETS[preset][name] for name in filled}}
        settings = handler(given)
        settings.__pydantic_fields_set__.difference_update(filled)
        if data.get("preset", "auto") == "auto":
            settings.__pydantic_fields_set__.discard("preset")
        if 0 < settings.aug_bank < settings.augmentations:
            raise ValueError(f"aug_bank ({settings.aug_bank}) must be 0 (fresh augmentations) or at least "
                             f"augmentations ({settings.augmentations})")
        return settings

    @property
    def stroke_counts(self) -> list[int]:
        """Stroke count of every level, ascending (one entry when ``levels`` is not set)."""
        return list(self.levels) if self.levels else [self.strokes]

    @property
    def seed_list(self) -> list[int]:
        """The seeds run together: seed, seed + 1000, … (the paper's 0, 1000, 2000)."""
        return [self.seed + 1000 * i for i in range(self.seeds)]
