"""How much memory a sketch needs, and refusing one that would not fit.

A step keeps CLIP's activations of every image in the batch for the backward pass: (levels ×
seeds) groups × (1 plain + ``augmentations``) images. That, not the stroke count, is what grows;
the photo's encoded augmentation bank comes on top. Figures measured for RN101 at 224 px on CPU
(``benchmarks/memory.py`` prints measurement and estimate side by side): ~80 MB per image in
fp32, ~50 MB in bf16 on a CPU, ~45 MB in fp16 on CUDA; 2.4 MB per encoded view of the photo (layer2 + layer3 + embedding,
fp32). A job that would need more than the free memory is refused with a message saying what
to lower, instead of swapping the computer to a standstill or dying of out-of-memory mid-run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

import torch

from .errors import SettingsError

if TYPE_CHECKING:
    from .settings import SketchSettings

MiB = 2**20
GiB = 2**30
PER_IMAGE = {"fp32": 80 * MiB, "bf16": 50 * MiB, "fp16": 45 * MiB}   # activations kept for backward (bf16: CPU autocast, fp16: CUDA)
PER_VIEW = int(2.4 * MiB)            # one encoded photo view (targets), fp32
BANK_ENCODE = 6 * MiB                # transient per view while the bank is encoded (no grad)
MODELS = 600 * MiB                   # RN101 + ViT-B/32 image towers, fp32
STORED = 110 * MiB                   # bf16/fp16: the loss tower's conv/linear weights kept in that type too
RUNTIME = 800 * MiB                  # Python + torch in a CPU process, allocator slack included
HEADROOM = 0.9                       # use at most this share of what is free


class MemoryBudgetError(SettingsError):
    """The sketch would need more memory than the device has free (its settings ask too much)."""


def job_bytes(images: int, aug_bank: int, precision: str, streams: int = 1) -> int:
    """Memory a sketch adds on top of the loaded models: activations of ``images`` per step
    in ``precision`` and the photo's banks of ``aug_bank`` views, one per augmentation stream
    (``augment.stream_count``), + the plain view."""
    views = aug_bank * streams + 1
    return images * PER_IMAGE.get(precision, PER_IMAGE["fp32"]) + views * PER_VIEW + views * BANK_ENCODE // 4


def estimate_bytes(settings: SketchSettings, device: torch.device) -> int:
    """Predicted peak of a whole sketch process for ``settings`` on ``device`` (for the memory
    benchmark): runtime (CPU) + models + the job itself."""
    from .augment import stream_count
    from .devices import resolve_precision

    images = len(settings.stroke_counts) * settings.seeds * (settings.augmentations + 1)
    precision = resolve_precision(settings.precision, device)
    models = MODELS + (STORED if precision != "fp32" else 0)
    streams = stream_count(settings.aug_streams, settings.seeds)
    return job_bytes(images, settings.aug_bank, precision, streams) + models + (RUNTIME if device.type == "cpu" else 0)


def free_bytes(device: torch.device) -> Optional[int]:
    """Memory free for a new job on ``device``: the system's available memory for the CPU
    (Linux /proc/meminfo, else sysconf), free plus torch's cached-but-unused memory on CUDA;
    None where it cannot be told (MPS, unknown systems): no check is made there."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(groups: int, augmentations: int, aug_bank: int, streams: int, precision: str, device: torch.device,
               what: str) -> None:
    """Raise ``MemoryBudgetError`` when a job of ``groups`` (level × seed) stroke sets, with a bank
    of ``aug_bank`` views per augmentation stream, would not fit in the free memory of ``device``.
    ``what`` describes the job's size for the message."""
    need = job_bytes(groups * (augmentations + 1), aug_bank, precision, streams)
    free = free_bytes(device)
    if free is None or need <= HEADROOM * free:
        return
    where = "GPU" if device.type == "cuda" else "computer"
    raise MemoryBudgetError(
        f"this sketch needs about {need / GiB:.1f} GB of memory ({what}: {groups * (augmentations + 1)} images "
        f"per step) but the {where} has only {free / GiB:.1f} GB free: use fewer seeds, levels or augmentations, "
        "or close other programs"
    )
