"""CLIP loading (names, files, caches, random models), feature taps and attention maps.

No real CLIP weights exist on the test machines: files are made here from random models in
OpenAI's formats (TorchScript archive, state dict), and the real architectures run as
``random:RN101`` / ``random:ViT-B-32``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import open_clip
import pytest
import torch
from torch import nn

from clipasso_engine.clip_models import (
    CLIP_MEAN,
    CLIP_STD,
    RESNET_STAGES,
    ClipImageModel,
    _vision_tower,
    get_clip,
    load_clip,
    normalize,
)
from clipasso_engine.clip_weights import (
    WEIGHTS,
    WeightsMissingError,
    _download,
    available_models,
    check_present,
    download_clip,
)
from clipasso_engine.errors import SettingsError, WeightsError

TINY_VISION = {
    "RN": {"layers": (1, 1, 1, 1), "width": 8, "image_size": 224, "patch_size": None},
    "ViT": {"layers": 2, "width": 128, "patch_size": 32, "image_size": 224},
}
TINY_TEXT = {"context_length": 77, "vocab_size": 100, "width": 32, "heads": 1, "layers": 1}


@pytest.fixture
def no_caches(tmp_path, monkeypatch) -> dict[str, Path]:
    """An empty CLIPASSO_CLIP_DIR and a HOME with no caches; huggingface's cache follows HOME."""
    clip_dir, home = tmp_path / "clipdir", tmp_path / "home"
    clip_dir.mkdir()
    home.mkdir()
    monkeypatch.setenv("CLIPASSO_CLIP_DIR", str(clip_dir))
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    return {"clip_dir": clip_dir, "home": home}


def tiny_clip(kind: str) -> nn.Module:
    """A whole open_clip CLIP model (image and text towers) small enough to save in a test."""
    torch.manual_seed(0)
    return open_clip.model.CLIP(64, TINY_VISION[kind], TINY_TEXT, quick_gelu=True).eval()


def images(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


def test_normalize_uses_clip_statistics():
    x = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    assert torch.allclose(normalize(x), torch.zeros(2, 3, 4, 4), atol=1e-7)
    ones = normalize(torch.ones(1, 3, 1, 1)).flatten()
    expected = torch.tensor([(1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)])
    assert torch.allclose(ones, expected)


@pytest.mark.parametrize("name, file", [("RN101", "RN101.pt"), ("ViT-B-32", "ViT-B-32.pt")])
def test_missing_weights_fail_fast_with_directions(no_caches, name, file):
    with pytest.raises(WeightsMissingError) as info:      # at once: no network, no download
        load_clip(name)
    msg = str(info.value)
    assert file in msg
    assert str(no_caches["clip_dir"]) in msg
    assert str(no_caches["home"] / ".cache" / "clip") in msg
    assert str(no_caches["home"] / ".cache" / "huggingface" / "hub") in msg
    assert f"clipasso models --download {name}" in msg and "--clip" in msg and "CLIPASSO_CLIP_DIR" in msg
    assert "\n" not in msg
    assert info.value.file == file and len(info.value.searched) == 3
    assert isinstance(info.value, WeightsError) and info.value.kind == "weights"


def test_every_missing_file_is_named_at_once_with_its_setting(no_caches):
    with pytest.raises(WeightsMissingError) as info:
        check_present([("clip", "RN101"), ("saliency_clip", "ViT-B-32"), ("clip", "random:RN101")])
    msg = str(info.value)
    assert "RN101.pt (model RN101) and ViT-B-32.pt (model ViT-B-32)" in msg
    assert "clipasso models --download RN101 ViT-B-32" in msg
    assert "`--clip /path/RN101.pt`" in msg and "`--saliency-clip /path/ViT-B-32.pt`" in msg
    assert info.value.detail == {"missing": ["RN101.pt", "ViT-B-32.pt"], "models": ["RN101", "ViT-B-32"],
                                 "folder": str(no_caches["clip_dir"])}
    torch.save(tiny_clip("RN").state_dict(), no_caches["clip_dir"] / "RN101.pt")
    with pytest.raises(WeightsMissingError) as info:
        check_present([("clip", "RN101"), ("saliency_clip", "ViT-B-32")])
    assert info.value.detail["missing"] == ["ViT-B-32.pt"] and "--saliency-clip" in str(info.value)
    assert "--clip " not in str(info.value)


def test_weights_table_urls_carry_their_sha256():
    """OpenAI's URLs hold the file's full SHA-256 before its name; open_clip's releases end the
    file name with its first 8 hex digits: a download is checked against exactly that."""
    assert {"RN101", "ViT-B-32", "RN50-cc12m", "RN101-yfcc15m"} <= set(WEIGHTS)
    for w in WEIGHTS.values():
        assert w.url.endswith("/" + w.file)
        if w.openai:
            assert w.url.split("/")[-2] == w.sha256 and len(w.sha256) == 64
        else:
            assert w.file.rsplit("-", 1)[1] == w.sha256 + ".pt" and len(w.sha256) == 8
        assert all(c in "0123456789abcdef" for c in w.sha256)
    assert (WEIGHTS["RN101-yfcc15m"].arch, WEIGHTS["RN50-cc12m"].arch) == ("RN101", "RN50")


def test_openly_licensed_weights_are_named_models(no_caches):
    """RN101-yfcc15m is a model name like RN101: looked up in the same folders under its own file
    name (or open_clip's hub cache), missing it says so, and a file there loads as RN101's shape."""
    with pytest.raises(WeightsMissingError, match="rn101-quickgelu-yfcc15m-3e04b30e.pt"):
        load_clip("RN101-yfcc15m")
    rows = {r["name"]: r for r in available_models(["RN101-yfcc15m"])}
    assert rows["RN101-yfcc15m"]["searched"][-1].endswith("models--timm--resnet101_clip.yfcc15m")
    torch.save(tiny_clip("RN").state_dict(), no_caches["clip_dir"] / WEIGHTS["RN101-yfcc15m"].file)
    model = load_clip("RN101-yfcc15m")
    assert model.source == str(no_caches["clip_dir"] / WEIGHTS["RN101-yfcc15m"].file) and model.is_resnet


def test_download_refuses_unknown_names_and_checks_the_table_hash(no_caches, monkeypatch, tmp_path):
    with pytest.raises(SettingsError, match="RN101-yfcc15m"):
        download_clip("RN102")
    src = tmp_path / "served" / "RN101.pt"
    src.parent.mkdir()
    src.write_bytes(b"not the real file")
    monkeypatch.setitem(WEIGHTS, "RN101", dataclasses.replace(WEIGHTS["RN101"], url=src.as_uri()))
    with pytest.raises(WeightsError, match="corrupt"):      # its SHA-256 is not OpenAI's RN101.pt's
        download_clip("RN101")
    assert list(no_caches["clip_dir"].iterdir()) == []


def test_open_clip_tower_builder_still_builds_both_towers():
    """The one internal name of open_clip we call (``_vision_tower`` wraps it): when a release
    drops or changes it, this fails loudly, naming the supported releases."""
    rn = _vision_tower(64, {"layers": (1, 1, 1, 1), "width": 8, "image_size": 224})
    vit = _vision_tower(64, {"layers": 2, "width": 128, "patch_size": 32, "image_size": 224})
    assert [name for name, _ in rn.named_children()][:1] == ["conv1"] and hasattr(rn, "attnpool")
    assert all(hasattr(rn, stage) for stage in RESNET_STAGES[1:])
    assert isinstance(vit.transformer.resblocks[0].attn, nn.MultiheadAttention)
    with torch.no_grad():
        assert rn(normalize(images(1))).shape == vit(normalize(images(1))).shape == (1, 64)


def test_missing_file_path_names_it(tmp_path):
    missing = tmp_path / "RN101.pt"
    with pytest.raises(WeightsMissingError, match="RN101.pt") as info:
        load_clip(str(missing))
    assert str(missing) in str(info.value)


def test_available_models_reports_search(no_caches):
    rows = {r["name"]: r for r in available_models()}
    assert set(rows) == {"RN101", "ViT-B-32"}
    for row in rows.values():
        assert row["present"] is False and row["path"] is None
        assert row["searched"][:2] == [str(no_caches["clip_dir"]), str(no_caches["home"] / ".cache" / "clip")]


def save_torchscript(model: nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; OpenAI's files use it
        torch.jit.script(model).save(str(path))


@pytest.mark.parametrize("kind", ["RN", "ViT"])
@pytest.mark.parametrize("fmt", ["torchscript", "state_dict", "wrapped_half"])
def test_weights_file_round_trip(tmp_path, kind, fmt):
    model = tiny_clip(kind)
    path = tmp_path / f"tiny-{kind}.pt"
    if fmt == "torchscript":  # OpenAI's format
        save_torchscript(model, path)
    elif fmt == "state_dict":
        torch.save(model.state_dict(), path)
    else:  # float16 tensors (as in OpenAI's files) inside a training checkpoint with DDP prefixes
        model = model.half().float()
        sd = {"module." + k: v.half() for k, v in model.state_dict().items()}
        torch.save({"epoch": 3, "state_dict": sd}, path)
    loaded = load_clip(str(path))
    x = normalize(images())
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.visual(x), atol=1e-6, rtol=1e-5)
    assert loaded.source == str(path.resolve()) and loaded.random is False
    assert loaded.embed_dim == 64 and loaded.input_size == 224
    assert loaded.arch == path.stem  # no OpenAI model has this shape: named after the file


def test_named_model_found_in_clip_dir_and_hf_cache(no_caches, monkeypatch, tmp_path):
    model = tiny_clip("RN")
    torch.save(model.state_dict(), no_caches["clip_dir"] / "RN101.pt")
    rows = {r["name"]: r for r in available_models()}
    assert rows["RN101"]["present"] and rows["RN101"]["path"] == str(no_caches["clip_dir"] / "RN101.pt")
    assert load_clip("RN101").source == str(no_caches["clip_dir"] / "RN101.pt")

    # open_clip's huggingface download of ViT-B-32, found without any network access
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snap = tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    vit = tiny_clip("ViT")
    torch.save(vit.state_dict(), snap / "open_clip_pytorch_model.bin")
    loaded = load_clip("ViT-B-32")
    assert loaded.source == str(snap / "open_clip_pytorch_model.bin")
    x = normalize(images(1))
    with torch.no_grad():
        assert torch.allclose(loaded(x), vit.visual(x), atol=1e-6)


def test_download_checks_hash_and_leaves_no_partial_file(tmp_path):
    src = tmp_path / "src" / "RN101.pt"
    src.parent.mkdir()
    src.write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    target = tmp_path / "cache" / "RN101.pt"
    assert _download(src.as_uri(), target, digest[:16]) == target
    assert target.read_bytes() == src.read_bytes()

    bad = tmp_path / "cache2" / "RN101.pt"
    with pytest.raises(WeightsError, match="corrupt"):
        _download(src.as_uri(), bad, "0" * 16)
    assert list(bad.parent.iterdir()) == []


@pytest.mark.parametrize("spec", ["nonsense", "random:nonsense", "RN101x"])
def test_unknown_spec_lists_valid_forms(spec):
    with pytest.raises(ValueError, match="random:RN101"):
        load_clip(spec)


@pytest.mark.parametrize("spec", ["random:tiny-RN", "random:tiny-ViT"])
def test_tiny_models_are_frozen_and_small(spec):
    model = load_clip(spec)
    assert model.random and model.source == "random" and model.spec == spec
    assert all(not p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training and not model.visual.training
    # tests stay fast because the towers stay small (speed itself belongs to benchmarks/)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000      # RN101 has 56 M
    x = normalize(images(5)).requires_grad_(True)
    model(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_features_one_pass_with_gradients():
    model = load_clip("random:tiny-RN")
    x = normalize(images()).requires_grad_(True)
    emb, taps = model.features(x, ("layer2", "layer3"))
    assert set(taps) == {"layer2", "layer3"}
    assert taps["layer2"].shape[-2:] == (28, 28) and taps["layer3"].shape[-2:] == (14, 14)
    with torch.no_grad():
        assert torch.allclose(emb, model(x))
    (emb.sum() + taps["layer2"].square().mean()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    _, all_taps = model.features(x.detach(), RESNET_STAGES)
    assert [t.shape[-1] for t in all_taps.values()] == [56, 56, 28, 14, 7]


def test_features_reject_vit_and_unknown_taps():
    with pytest.raises(ValueError, match="ResNet"):
        load_clip("random:tiny-ViT").features(normalize(images(1)))
    with pytest.raises(ValueError, match="layer9"):
        load_clip("random:tiny-RN").features(normalize(images(1)), ("layer9",))
    with pytest.raises(ValueError, match="ViT"):
        load_clip("random:tiny-RN").attention_maps(normalize(images(1)))


def test_attention_maps_match_multihead_attention_weights():
    model = load_clip("random:tiny-ViT")
    blocks = model.visual.transformer.resblocks
    captured: list[torch.Tensor] = []
    hooks = [b.ln_1.register_forward_hook(lambda _m, _i, out: captured.append(out)) for b in blocks]
    x = normalize(images(2))
    with torch.no_grad():
        maps = model.attention_maps(x)  # (B, L, T, T)
    for h in hooks:
        h.remove()
    assert maps.shape == (2, len(blocks), 50, 50)
    assert torch.allclose(maps.sum(-1), torch.ones(2, len(blocks), 50), atol=1e-5)
    for i, (block, inp) in enumerate(zip(blocks, captured)):
        with torch.no_grad():
            _, ref = block.attn(inp, inp, inp, need_weights=True, average_attn_weights=True)
        assert torch.allclose(maps[:, i], ref, atol=1e-6), f"layer {i}"


def test_get_clip_returns_the_same_model():
    a = get_clip("random:tiny-RN")
    assert get_clip("random:tiny-RN", "cpu") is a
    assert get_clip("random:tiny-ViT") is not a


def test_random_rn101_is_the_real_architecture_with_useful_gradients():
    model = load_clip("random:RN101")
    assert model.arch == "RN101" and model.embed_dim == 512 and model.input_size == 224
    x = normalize(images(1)).requires_grad_(True)
    emb, taps = model.features(x)
    assert taps["layer2"].shape == (1, 512, 28, 28)  # docs/method.md §3
    assert taps["layer3"].shape == (1, 1024, 14, 14)
    assert emb.shape == (1, 512) and torch.isfinite(emb).all()
    (taps["layer2"].square().mean() + taps["layer3"].square().mean() + emb.norm()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().mean() > 1e-7
    assert all(not p.requires_grad for p in model.parameters())


def test_random_vit_b32_attention_grid():
    model = load_clip("random:ViT-B-32")
    assert model.arch == "ViT-B-32" and model.embed_dim == 512
    with torch.no_grad():
        maps = model.attention_maps(normalize(images(1)))
    assert maps.shape == (1, 12, 50, 50)  # 12 layers, class token + 7×7 patches
    assert isinstance(model, ClipImageModel) and torch.isfinite(maps).all()
