"""Device, precision and preset choices: bf16 only where the CPU computes it natively."""

from __future__ import annotations

import platform

import pytest
import torch

from clipasso_engine.devices import auto_preset, cpu_has_native_bf16, resolve_precision
from clipasso_engine.settings import PRESETS, SketchSettings


def _flags_from_cpuinfo() -> set[str]:
    """The CPU's feature words, read independently of the engine's own reader."""
    try:
        lines = open("/proc/cpuinfo", encoding="ascii", errors="replace").read().splitlines()
    except OSError:
        pytest.skip("no /proc/cpuinfo on this system")
    return {word for line in lines if line.split(":")[0].strip() in ("flags", "Features") for word in line.split(":", 1)[1].split()}


def test_native_bf16_is_detected_from_the_hardware():
    """torch's CPU probe (what the engine asks first) and the kernel's flag list agree."""
    flags = _flags_from_cpuinfo()
    if platform.machine() in ("x86_64", "AMD64"):
        expected = bool(flags & {"avx512_bf16", "amx_bf16"})
    else:
        expected = "bf16" in flags
    assert cpu_has_native_bf16() is expected


def test_auto_precision_per_device():
    cpu = resolve_precision("auto", torch.device("cpu"))
    assert cpu == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    for explicit in ("fp32", "bf16", "fp16"):                    # one option away, on every device
        assert resolve_precision(explicit, torch.device("cpu")) == explicit


def test_auto_preset_is_fast_on_cpu_and_standard_on_a_gpu():
    cpu = SketchSettings(device="cpu")
    assert cpu.preset == "fast" and cpu.iterations == PRESETS["fast"]["iterations"] and cpu.seeds == 1
    gpu = SketchSettings(device="cuda")
    assert gpu.preset == "standard" and gpu.iterations == PRESETS["standard"]["iterations"] and gpu.seeds == 3
    assert SketchSettings(device="cpu", iterations=7).iterations == 7          # an explicit field still wins
    expected = "fast" if not (torch.cuda.is_available() or torch.backends.mps.is_available()) else "standard"
    assert SketchSettings().preset == auto_preset("auto") == expected
    assert "preset" not in SketchSettings().model_dump(exclude_unset=True)     # sent unset, resolved by the engine


@pytest.mark.parametrize("preset", ["auto", "fast", "standard", "paper"])
def test_a_preset_fills_plain_values_and_only_what_the_caller_left_out(preset):
    """Presets fill fields before they are validated: every preset field holds a plain value of
    its type (no None to cast later), explicit values (also 0 and False) win, null means "the
    preset's", and only what the caller set counts as set, so a copy validated on another
    machine resolves preset ``auto`` again."""
    from clipasso_engine.settings import PRESET_FIELDS

    s = SketchSettings(preset=preset, device="cuda", iterations=None, early_stop=False, aug_bank=0)
    resolved = "standard" if preset == "auto" else preset
    assert s.preset == resolved
    for name in PRESET_FIELDS:
        value = getattr(s, name)
        assert value is not None and isinstance(value, type(PRESETS[resolved][name])), name
    assert (s.iterations, s.seeds, s.early_stop, s.aug_bank) == (PRESETS[resolved]["iterations"],
                                                                  PRESETS[resolved]["seeds"], False, 0)
    given = s.model_dump(exclude_unset=True)
    assert set(given) == {"device", "early_stop", "aug_bank"} | ({"preset"} if preset != "auto" else set())
    on_cpu = SketchSettings.model_validate({**given, "device": "cpu"})
    assert on_cpu.preset == ("fast" if preset == "auto" else preset)
    assert on_cpu.iterations == PRESETS[on_cpu.preset]["iterations"]
    assert SketchSettings.model_validate(s.model_dump()) == s                  # a full dump reads back the same
