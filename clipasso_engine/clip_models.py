"""CLIP image encoders: load by name, file or ``random:ARCH``, and read their inner layers.

Only the image tower of a CLIP model is kept (the text tower is never built): CLIPasso
compares images with images. Where weight files are and how they are fetched is
:mod:`clipasso_engine.clip_weights`. Specs accepted by :func:`load_clip`:

- ``"RN101"``, ``"ViT-B-32"`` (or another name in ``clip_weights.WEIGHTS``, e.g. the openly
  licensed ``"RN101-yfcc15m"``): that file, found by :func:`clip_weights.find_weights`. The
  network is used only when asked (``download=True``); otherwise a missing file raises
  :class:`~clipasso_engine.clip_weights.WeightsMissingError` at once.
- a file path: OpenAI's TorchScript archive (``RN101.pt``), a plain state dict (``torch.save``),
  or a ``.safetensors`` file; the architecture is read from the tensor shapes.
- ``"random:RN101"``, ``"random:ViT-B-32"``: the same architecture with random weights, for
  tests and benchmarks (identical cost, meaningless output).
- ``"random:tiny-RN"``, ``"random:tiny-ViT"``: tiny towers with the same stage names, for fast tests.

Images enter as ``(B, 3, S, S)`` tensors already passed through :func:`normalize`,
``S = model.input_size`` (224 for every model here).
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import open_clip
import torch
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import Tensor, nn
from torch.nn import functional as F

from .clip_weights import WeightsMissingError, download_clip, find_weights, known, looks_like_path, model_names
from .errors import SettingsError, WeightsError
from .fusion import fold_batchnorm

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")

# Tiny towers for tests: same stage names and input size as the real ones, a few ms per image.
# vision_cfg as open_clip reads it; 64-wide heads as in OpenAI's models (files do not record heads).
_TINY = {
    "tiny-RN": (64, {"layers": (1, 1, 1, 1), "width": 8, "image_size": 224}),
    "tiny-ViT": (64, {"layers": 3, "width": 128, "patch_size": 32, "image_size": 224}),
}


def normalize(images: Tensor) -> Tensor:
    """CLIP's input normalization of ``(B, 3, H, W)`` images in [0, 1] (per-channel mean/std)."""
    mean = images.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


class ClipImageModel(nn.Module):
    """A frozen CLIP image tower (eval mode, no parameter gradients; gradients reach the input).

    Attributes: ``spec`` (as asked), ``arch`` ("RN101", "ViT-B-32", "tiny-RN", ...), ``random``
    (True for random weights), ``source`` (the weights file, or "random"), ``embed_dim``,
    ``input_size`` (square input side in pixels).
    """

    def __init__(self, visual: nn.Module, *, spec: str, arch: str, source: str):
        super().__init__()
        if not isinstance(visual, (ModifiedResNet, VisionTransformer)):
            raise TypeError(f"unsupported CLIP image tower {type(visual).__name__}")
        self.visual = visual.eval().requires_grad_(False)
        if isinstance(visual, ModifiedResNet):
            fold_batchnorm(visual)               # same function, one pass less per activation
        self.spec, self.arch, self.source = spec, arch, source
        self.random = source == "random"
        self.embed_dim: int = visual.output_dim
        size = visual.image_size
        self.input_size: int = size[0] if isinstance(size, tuple) else int(size)
        self._stored: dict[torch.dtype, ClipImageModel] = {}   # copies made by stored_in (not submodules)

    @property
    def is_resnet(self) -> bool:
        return isinstance(self.visual, ModifiedResNet)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.visual.parameters()).dtype

    def stored_in(self, dtype: torch.dtype) -> "ClipImageModel":
        """This tower with its convolution and linear weights stored in ``dtype`` (bf16, fp16),
        made once and kept; ``self`` for fp32. Under autocast to ``dtype`` those layers compute in
        it anyway, so the copy gives the same numbers without casting every weight again on every
        pass (~3 % of a bf16 step of RN101 on a CPU, docs/speed.md). The other weights (positional
        embeddings, norms) stay fp32, as autocast wants them. ResNets only (the loss's towers)."""
        if dtype == torch.float32 or not self.is_resnet:
            return self
        with _STORED_LOCK:
            copy_ = self._stored.get(dtype)
            if copy_ is None:
                visual = copy.deepcopy(self.visual)
                for module in visual.modules():
                    if isinstance(module, (nn.Conv2d, nn.Linear)):
                        for param in module.parameters(recurse=False):
                            param.data = param.data.to(dtype)
                copy_ = ClipImageModel(visual, spec=self.spec, arch=self.arch, source=self.source)
                self._stored[dtype] = copy_
            return copy_

    def train(self, mode: bool = True) -> "ClipImageModel":
        """Always stays in eval mode: batch-norm statistics are part of the frozen weights."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """Embeddings ``(B, embed_dim)`` of normalized ``(B, 3, S, S)`` images."""
        return self.visual(images.to(self.dtype))

    def features(
        self, images: Tensor, taps: Sequence[str] = ("layer2", "layer3")
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One pass of a ResNet tower: the embedding ``(B, embed_dim)`` and the outputs of the named
        stages (among "stem", "layer1".."layer4"), e.g. RN101 at 224: layer2 ``(B, 512, 28, 28)``,
        layer3 ``(B, 1024, 14, 14)``. Differentiable with respect to ``images``."""
        if not self.is_resnet:
            raise ValueError(f"feature taps need a ResNet CLIP model; {self.arch} is a ViT")
        unknown = sorted(set(taps) - set(RESNET_STAGES))
        if unknown:
            raise ValueError(f"unknown feature tap(s) {unknown}; valid: {list(RESNET_STAGES)}")
        x = images.to(self.dtype)
        out: dict[str, Tensor] = {}
        for name in RESNET_STAGES:
            x = getattr(self.visual, name)(x)
            if name in taps:
                out[name] = x
        return self.visual.attnpool(x), out

    def attention_maps(self, images: Tensor) -> Tensor:
        """ViT only: attention probabilities of every transformer layer, averaged over heads,
        ``(B, layers, T, T)`` with ``T = 1 + patches`` (token 0 is the class token; patches in
        row-major order of the patch grid). Row i is where token i attends.

        open_clip calls its attention without returning the weights, so the input of each
        block's attention (its ``ln_1`` output) is captured with a hook and the softmax(q·kᵀ/√d)
        is recomputed from the block's own in-projection.
        """
        if self.is_resnet:
            raise ValueError(f"attention maps need a ViT CLIP model; {self.arch} is a ResNet")
        blocks = self.visual.transformer.resblocks
        if not all(isinstance(b.attn, nn.MultiheadAttention) for b in blocks):
            raise ValueError(f"{self.arch}: attention maps need nn.MultiheadAttention blocks")
        inputs: list[Tensor] = []
        hooks = [b.attn.register_forward_pre_hook(lambda _m, args: inputs.append(args[0])) for b in blocks]
        try:
            self.visual(images.to(self.dtype))
        finally:
            for h in hooks:
                h.remove()
        return torch.stack([_attention_probs(b.attn, x) for b, x in zip(blocks, inputs)], dim=1)


def _attention_probs(attn: nn.MultiheadAttention, x: Tensor) -> Tensor:
    """Self-attention probabilities of ``attn`` on input ``x``, averaged over heads: ``(B, T, T)``."""
    if not attn.batch_first:
        x = x.transpose(0, 1)  # (T, B, D) -> (B, T, D)
    b, t, d = x.shape
    h = attn.num_heads
    w, bias = attn.in_proj_weight[: 2 * d], attn.in_proj_bias[: 2 * d]
    q, k = F.linear(x, w, bias).view(b, t, 2, h, d // h).permute(2, 0, 3, 1, 4)  # 2 × (B, H, T, d/H)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)  # (B, H, T, T)
    return probs.mean(dim=1)  # (B, T, T)


# ---------------------------------------------------------------- building towers


OPEN_CLIP_SUPPORTED = ">=2.24,<4"     # the open-clip-torch releases this module is tested with (pyproject.toml)


def _base_name(name: str) -> str:
    return name.removesuffix("-quickgelu")


def _vision_tower(embed_dim: int, vision_cfg: dict[str, Any]) -> nn.Module:
    """An open_clip image tower (``ModifiedResNet`` or ``VisionTransformer``) of this shape,
    with OpenAI's QuickGELU, without building a text tower.

    The one place that calls open_clip beyond its public names: ``open_clip.model.
    _build_vision_tower`` (open_clip's public ``create_model`` would build and drop a text tower
    of ~63 M parameters per model, and only for named configs, while files give shapes). A
    release that drops or changes it fails here, loudly, and in tests/test_clip_models.py."""
    try:
        from open_clip.model import _build_vision_tower
    except ImportError as exc:
        raise WeightsError(f"open-clip-torch {getattr(open_clip, '__version__', '?')} has no image-tower builder ({exc}); "
                           f"clipasso needs open-clip-torch{OPEN_CLIP_SUPPORTED}") from None
    visual = _build_vision_tower(embed_dim, vision_cfg, quick_gelu=True)
    if not isinstance(visual, (ModifiedResNet, VisionTransformer)):
        raise WeightsError(f"open-clip-torch {getattr(open_clip, '__version__', '?')} built a {type(visual).__name__}, not a CLIP "
                           f"image tower; clipasso needs open-clip-torch{OPEN_CLIP_SUPPORTED}")
    return visual


def _random_tower(arch: str) -> nn.Module:
    """An image tower of ``arch`` with random weights, initialized so a random ResNet is useful
    as a stand-in: open_clip zeroes each bottleneck's last BN scale (``bn3``), which makes the
    residual branches vanish, and PyTorch's default conv init shrinks the signal about 3× per
    conv, which leaves RN101's deeper stages near zero (measured: input gradients ~1e-8).
    He-normal convs and bn3 scales of 0.2 keep every stage's activations O(0.1) and finite."""
    if arch in _TINY:
        embed_dim, vision_cfg = _TINY[arch]
    else:
        cfg = open_clip.get_model_config(arch + "-quickgelu") or open_clip.get_model_config(arch)
        if cfg is None:
            raise SettingsError(f"unknown CLIP architecture {arch!r}; {_SPEC_HELP}")
        embed_dim, vision_cfg = cfg["embed_dim"], cfg["vision_cfg"]
    # seeded, without touching the caller's random state: the same weights in every process,
    # so a random-weight run is reproducible across CLI calls and engine restarts
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        visual = _vision_tower(embed_dim, vision_cfg)
        if isinstance(visual, ModifiedResNet):
            for module in visual.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            for stage in RESNET_STAGES[1:]:
                for block in getattr(visual, stage):
                    nn.init.constant_(block.bn3.weight, 0.2)
    return visual


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a weights file: OpenAI's TorchScript archive, ``torch.save`` state dict (also
    wrapped in ``{"state_dict": ...}`` or with ``module.`` prefixes) or safetensors."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        with warnings.catch_warnings():  # torch.jit is deprecated, but OpenAI's files need it
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    except RuntimeError:  # not TorchScript: a pickled state dict, tensors only
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not a CLIP weights file (found {type(obj).__name__})")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _vision_cfg_from_state_dict(sd: dict[str, Tensor]) -> tuple[int, dict[str, Any]]:
    """``(embed_dim, vision_cfg)`` of the image tower whose weights are ``visual.*`` in ``sd``."""
    if "visual.proj" in sd:  # ViT
        width, _, patch, _ = sd["visual.conv1.weight"].shape
        layers = sum(k.startswith("visual.") and k.endswith(".attn.in_proj_weight") for k in sd)
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        cfg = {"layers": layers, "width": width, "patch_size": patch, "image_size": patch * grid}
        return sd["visual.proj"].shape[1], cfg
    if "visual.attnpool.c_proj.weight" in sd:  # ModifiedResNet
        blocks = [{k.split(".")[2] for k in sd if k.startswith(f"visual.layer{i}.")} for i in range(1, 5)]
        layers = tuple(len(b) for b in blocks)
        grid = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        width = sd["visual.layer1.0.conv1.weight"].shape[0]
        cfg = {"layers": layers, "width": width, "patch_size": None, "image_size": grid * 32}
        return sd["visual.attnpool.c_proj.weight"].shape[0], cfg
    raise ValueError("no CLIP image tower (visual.*) in this weights file")


def _shape_key(embed_dim: int, vision_cfg: dict[str, Any]) -> tuple:
    layers = vision_cfg["layers"]
    layers = tuple(layers) if isinstance(layers, (list, tuple)) else layers
    return embed_dim, layers, vision_cfg["width"], vision_cfg.get("patch_size"), vision_cfg["image_size"]


def _arch_name(embed_dim: int, vision_cfg: dict[str, Any], path: Path) -> str:
    """The OpenAI model name with this architecture, else the file's name."""
    key = _shape_key(embed_dim, vision_cfg)
    for name in dict.fromkeys(known(n).arch for n in model_names()):
        cfg = open_clip.get_model_config(name)
        if cfg and _shape_key(cfg["embed_dim"], cfg["vision_cfg"]) == key:
            return name
    return path.stem


def _tower_from_file(path: Path) -> tuple[nn.Module, str]:
    """Image tower with the weights of ``path``, in float32, and its architecture name. A file
    that is not CLIP weights (corrupt, truncated, another network) raises ``ValueError`` naming it."""
    try:
        sd = _read_state_dict(path)
        embed_dim, vision_cfg = _vision_cfg_from_state_dict(sd)
        visual = _vision_tower(embed_dim, vision_cfg)
        # OpenAI's files hold many tensors in float16; loading into float32 parameters is exact.
        visual.load_state_dict({k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")})
    except (ValueError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise WeightsError(f"{path} is not a readable CLIP weights file ({type(exc).__name__}: {str(exc)[:200]}); "
                         "use OpenAI's RN101.pt / ViT-B-32.pt or an open_clip state dict") from None
    return visual, _arch_name(embed_dim, vision_cfg, path)


_SPEC_HELP = (
    "valid forms: an OpenAI CLIP name (RN101, ViT-B-32, RN50, ViT-B-16, ViT-L-14, ...), an openly "
    "licensed one (RN50-cc12m, RN101-yfcc15m), "
    "a weights file path (/path/RN101.pt), random:RN101, random:ViT-B-32 (random weights, same "
    "cost), random:tiny-RN or random:tiny-ViT (tiny test models)"
)


def load_clip(spec: str, device: torch.device | str = "cpu", *, download: bool = False) -> ClipImageModel:
    """A frozen float32 CLIP image tower for ``spec`` (see the module docstring) on ``device``.

    Never touches the network unless ``download``; missing weights raise
    :class:`WeightsMissingError` naming the file and every place searched. Unknown specs raise
    :class:`SettingsError`, unreadable files :class:`WeightsError`.
    """
    spec = spec.strip()
    if spec.startswith("random:"):
        arch = _base_name(spec.removeprefix("random:"))
        visual, source = _random_tower(arch), "random"
    elif looks_like_path(spec) or os.path.isfile(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WeightsMissingError([(path.stem, str(path), "clip")], [str(path)])
        visual, arch = _tower_from_file(path)
        source = str(path.resolve())
    elif known(spec):
        entry = known(spec)
        path, searched = find_weights(entry.name)
        if path is None:
            if not download:
                raise WeightsMissingError([(entry.name, entry.file, "clip")], searched)
            path = download_clip(entry.name)
        visual, arch = _tower_from_file(path)
        source = str(path)
    else:
        raise SettingsError(f"unknown CLIP model {spec!r}; {_SPEC_HELP}")
    return ClipImageModel(visual.float(), spec=spec, arch=arch, source=source).to(device)


CACHE_BYTES = 2 * 2**30          # models kept loaded, by their weights' bytes (RN101 ≈ 0.25 GB, ViT-B-32 ≈ 0.35 GB)
_CACHE: OrderedDict[tuple, ClipImageModel] = OrderedDict()      # least recently used first
_CACHE_LOCK = threading.Lock()
_STORED_LOCK = threading.Lock()


def get_clip(spec: str, device: torch.device | str = "cpu", *, download: bool = False) -> ClipImageModel:
    """:func:`load_clip`, once per weights file and device while it stays in use: the engine
    serves many jobs with the same frozen models. A file is known by its identity (device,
    inode, size, modification time), not by how its path is spelled, so ``/w/RN101.pt``,
    ``/w/./RN101.pt``, a link to it and ``RN101`` (found there) load it once. The cache holds
    up to ``CACHE_BYTES`` of weights, dropping the least recently used model beyond that (a
    job still using it keeps it alive). Thread-safe; downloads only if ``download``."""
    dev = str(torch.device(device))
    with _CACHE_LOCK:
        key = _cache_key(spec.strip(), dev)
        model = _CACHE.get(key)
        if model is None:
            model = load_clip(spec, device, download=download)
            _CACHE[key] = model
        _CACHE.move_to_end(key)
        sizes = {k: _model_bytes(m) for k, m in _CACHE.items()}
        for old in list(_CACHE)[:-1]:
            if sum(sizes.values()) <= CACHE_BYTES:
                break
            del _CACHE[old], sizes[old]
        return model


def _cache_key(spec: str, device: str) -> tuple:
    """What identifies the model ``spec`` loads: the weights file's identity where there is one."""
    path: Path | None = None
    if spec.startswith("random:"):
        return ("random", _base_name(spec.removeprefix("random:")), device)
    if looks_like_path(spec) or os.path.isfile(spec):
        path = Path(spec).expanduser()
    elif known(spec):
        path = find_weights(known(spec).name)[0]
    if path is not None:
        try:
            st = path.stat()
            return ("file", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, device)
        except OSError:
            pass
    return ("spec", spec, device)


def _model_bytes(model: nn.Module) -> int:
    """Bytes of a model's weights, with the copies ``stored_in`` made of it."""
    own = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    with _STORED_LOCK:
        copies = list(getattr(model, "_stored", {}).values())
    return own + sum(_model_bytes(c) for c in copies)


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "RESNET_STAGES",
    "ClipImageModel",
    "get_clip",
    "load_clip",
    "normalize",
]
