"""Where a sketch runs and in which arithmetic: device, CLIP precision and the automatic preset.

The choices made here decide most of a sketch's time (docs/speed.md has the measurements):
- ``device="auto"``: CUDA, else Apple's MPS, else the CPU.
- ``precision="auto"``: the CLIP passes run in bf16 on CPUs that compute bf16 natively
  (AVX512-BF16 or AMX on x86, the BF16 extension on ARM) — about 2× faster there, with control-point
  gradients that stay aligned with fp32's (cosine ≈ 0.998, ``benchmarks/precision.py``); fp32
  on other CPUs, where bf16 is emulated and slower; fp16 with loss scaling on CUDA (tensor
  cores); fp32 on MPS.
- ``preset="auto"``: ``fast`` without a GPU, ``standard`` with one.
"""

from __future__ import annotations

import functools
import platform

import torch

from .errors import DeviceError


def mps_available() -> bool:
    """Apple's GPU backend is built into this torch and usable here."""
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA, else MPS, else CPU; an explicit device that is absent is an error."""
    cuda, mps = torch.cuda.is_available(), mps_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise DeviceError(f"device {name!r} was asked for but is not available here; use --device auto or cpu")
    return torch.device(name)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 arithmetic instructions (not emulated): AVX512-BF16 or AMX
    on x86-64, the BF16 feature on 64-bit ARM (Linux). Detected from the hardware, never
    guessed from a model name; anything unknown counts as no."""
    cpu = getattr(torch, "cpu", None)
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i386", "i686"):
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
            check = getattr(cpu, probe, None)
            if check is not None and check():
                return True
        return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    if machine in ("aarch64", "arm64"):
        return "bf16" in _cpu_flags()
    return False


def _cpu_flags() -> set[str]:
    """The feature words of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """The arithmetic of the CLIP passes: an explicit choice stands; ``auto`` is bf16 on a CPU
    with native bf16, fp32 on other CPUs and on MPS, fp16 on CUDA."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def auto_preset(device: str) -> str:
    """The preset ``auto`` stands for on ``device`` ("auto", "cpu", "cuda", "mps"): ``standard``
    (2000 steps × 3 seeds) where a GPU computes, ``fast`` (500 steps × 1 seed) on a CPU, where
    ``standard`` would take over an hour."""
    if device == "auto":
        device = resolve_device("auto").type
    return "fast" if device == "cpu" else "standard"
