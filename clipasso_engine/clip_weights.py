"""CLIP weight files: which ones we know, where they are looked for, how they are downloaded.

The table below is ours (not read from open_clip, whose registry changes between releases):
each named model's file, the URL it comes from and its SHA-256, which a download must match
before it takes the file's name. OpenAI's URLs carry the full SHA-256 of each file as the path
part before the file name; open_clip's own releases carry the first 8 hex digits of it at the
end of the file name, so those are checked as a prefix.

Two families of weights (docs/models.md says what each license allows):

- OpenAI's (``RN101``, ``ViT-B-32``, ...): the defaults, the weights CLIPasso was made with.
  The code and weights are MIT-licensed, but OpenAI's model card places deployed use of the
  models out of scope.
- openly trained ResNets from open_clip (``RN50-cc12m``, ``RN101-yfcc15m``): the same
  architectures trained on open datasets, for users who cannot use OpenAI's.

A named model's file is looked for, in order, in ``$CLIPASSO_CLIP_DIR`` (when set),
``~/.cache/clip`` (where the ``clip`` package and open_clip's URL download keep OpenAI's files)
and huggingface's cache (where open_clip's hub download keeps them). The first of the first two
is *the* folder users are told to put files in (:func:`weights_folder`).
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import SettingsError, WeightsError

# The models `clipasso models` reports on: the loss model and the saliency model (docs/method.md),
# with the setting that names each.
DEFAULT_MODELS = ("RN101", "ViT-B-32")
SETTING_FLAGS = {"clip": "--clip", "saliency_clip": "--saliency-clip"}

_OPENAI_URL = "https://openaipublic.azureedge.net/clip/models/{sha256}/{file}"
_OPEN_CLIP_URL = "https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/{file}"
_DOWNLOAD_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WeightsFile:
    """One named model's weights: ``name`` as users write it, ``arch`` the open_clip
    architecture, ``file`` the file name in a weights folder, ``url``, ``sha256`` (full, or a
    prefix for open_clip's releases), ``hf_repo`` where open_clip's hub download caches it."""

    name: str
    arch: str
    file: str
    url: str
    sha256: str
    hf_repo: str
    openai: bool


def _openai(name: str, sha256: str, hf_repo: str, file: str = "") -> WeightsFile:
    file = file or f"{name}.pt"
    return WeightsFile(name, name, file, _OPENAI_URL.format(sha256=sha256, file=file), sha256, hf_repo, True)


def _open_clip(name: str, arch: str, file: str, hf_repo: str) -> WeightsFile:
    sha_prefix = file.rsplit("-", 1)[1].split(".")[0]
    return WeightsFile(name, arch, file, _OPEN_CLIP_URL.format(file=file), sha_prefix, hf_repo, False)


WEIGHTS: dict[str, WeightsFile] = {w.name: w for w in (
    _openai("RN50", "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "timm/resnet50_clip.openai"),
    _openai("RN101", "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", "timm/resnet101_clip.openai"),
    _openai("RN50x4", "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", "timm/resnet50x4_clip.openai"),
    _openai("RN50x16", "52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa",
            "timm/resnet50x16_clip.openai"),
    _openai("RN50x64", "be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c",
            "timm/resnet50x64_clip.openai"),
    _openai("ViT-B-32", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
            "timm/vit_base_patch32_clip_224.openai"),
    _openai("ViT-B-16", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
            "timm/vit_base_patch16_clip_224.openai"),
    _openai("ViT-L-14", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
            "timm/vit_large_patch14_clip_224.openai"),
    _openai("ViT-L-14-336", "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
            "timm/vit_large_patch14_clip_336.openai", file="ViT-L-14-336px.pt"),
    _open_clip("RN50-cc12m", "RN50", "rn50-quickgelu-cc12m-f000538c.pt", "timm/resnet50_clip.cc12m"),
    _open_clip("RN101-yfcc15m", "RN101", "rn101-quickgelu-yfcc15m-3e04b30e.pt", "timm/resnet101_clip.yfcc15m"),
)}


class WeightsMissingError(WeightsError):
    """CLIP weights for named models (or a given file) are nowhere to be found.

    ``missing``: ``[(name, file, setting)]`` for every missing file (``("RN101", "RN101.pt",
    "clip")``); ``name``/``file``: the first of them; ``searched``: every folder or path looked
    at. ``detail`` (for clients that word their own message): ``missing`` file names,
    ``models``, ``folder`` (the one folder to put them in).
    """

    def __init__(self, missing: Sequence[tuple[str, str, str]], searched: Sequence[str],
                 download_error: str | None = None):
        self.missing = [tuple(m) for m in missing]
        self.name, self.file = self.missing[0][0], self.missing[0][1]
        self.searched = list(searched)
        self.download_error = download_error
        files = [os.path.basename(f) for _, f, _ in self.missing]
        named = all(os.path.basename(f) == f for _, f, _ in self.missing)
        order = (
            f" (in order: CLIPASSO_CLIP_DIR{'' if os.environ.get('CLIPASSO_CLIP_DIR') else ' (not set)'}, "
            "the clip package's cache, open_clip's huggingface cache)"
            if named
            else ""
        )
        what = " and ".join(f"{f} (model {n})" for n, f, _ in self.missing)
        flags = " / ".join(f"`{SETTING_FLAGS.get(s, '--clip')} /path/{os.path.basename(f)}`" for _, f, s in self.missing)
        names = " ".join(n for n, _, _ in self.missing)
        super().__init__(
            f"CLIP weights {what} not found. Looked in: {'; '.join(self.searched)}{order}. "
            + (f"Downloading them failed ({download_error}). " if download_error else "")
            + (f"To get them, run once with network access `clipasso models --download {names}`, "
               f"or put OpenAI's {' and '.join(files)} in {weights_folder()} (the folder CLIPASSO_CLIP_DIR names, "
               f"else the clip package's cache), or pass {flags}. "
               if named else f"Pass the path of an existing weights file ({flags}). ")
            + f"For tests only, `random:{self.name}` runs the same architecture with random weights.",
            detail={"missing": files, "models": [n for n, _, _ in self.missing], "folder": str(weights_folder())},
        )


def known(spec: str) -> WeightsFile | None:
    """The table's entry for a model name (``RN101``, ``RN101-quickgelu``, ``RN101-yfcc15m``)."""
    return WEIGHTS.get(spec.strip().removesuffix("-quickgelu"))


def model_names() -> list[str]:
    return list(WEIGHTS)


def looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.endswith((".pt", ".pth", ".bin", ".safetensors"))


def weights_folder() -> Path:
    """The one folder users are told to put weights files in, and downloads go to:
    ``$CLIPASSO_CLIP_DIR`` when set, else ``~/.cache/clip``."""
    return _clip_dirs()[0]


def _clip_dirs() -> list[Path]:
    """The folders that may hold weights files, in search order: ``$CLIPASSO_CLIP_DIR`` when
    set, then ``~/.cache/clip`` (where the ``clip`` package and open_clip's URL download put them)."""
    env = os.environ.get("CLIPASSO_CLIP_DIR")
    return ([Path(env).expanduser()] if env else []) + [Path("~/.cache/clip").expanduser()]


def _hf_hub_cache() -> Path:
    """huggingface_hub's cache folder, from the environment at call time (not import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(os.environ.get("HF_HOME") or os.path.join(cache, "huggingface")).expanduser() / "hub"


def find_weights(name: str) -> tuple[Path | None, list[str]]:
    """Local file with the weights of the named model (or None) and the places searched."""
    entry = known(name)
    if entry is None:
        raise SettingsError(f"no weights known for {name!r}; known: {', '.join(WEIGHTS)}")
    searched: list[str] = []
    for folder in _clip_dirs():
        searched.append(str(folder))
        if (folder / entry.file).is_file():
            return folder / entry.file, searched
    hf_dir = _hf_hub_cache() / ("models--" + entry.hf_repo.replace("/", "--"))
    searched.append(str(hf_dir))
    for pattern in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        hits = sorted(glob.glob(str(hf_dir / "snapshots" / "*" / pattern)))
        if hits:
            return Path(hits[-1]), searched
    return None, searched


def check_present(named: Iterable[tuple[str, str]], download: bool = False) -> None:
    """Make sure the named models ``[(setting, spec)]`` (``("clip", "RN101")``) have their files,
    downloading missing ones when ``download``; else raise one :class:`WeightsMissingError`
    naming every missing file and the setting that asked for it. So a user who lacks both files
    hears of both at once. Paths and ``random:`` specs are left to loading."""
    missing, searched, failures = [], [], []
    for setting, spec in named:
        entry = None if spec.startswith("random:") or looks_like_path(spec) else known(spec)
        if entry is None or any(m[0] == entry.name for m in missing):
            continue
        path, searched = find_weights(entry.name)
        if path is not None:
            continue
        if download:
            try:
                download_clip(entry.name)
                continue
            except WeightsMissingError as exc:
                failures.append(str(exc.download_error))
        missing.append((entry.name, entry.file, setting))
    if missing:
        raise WeightsMissingError(missing, searched, "; ".join(failures) or None)


def available_models(names: Sequence[str] = DEFAULT_MODELS) -> list[dict[str, Any]]:
    """Which of the models have weights on this machine, and where they were sought:
    ``[{"name", "file", "present", "path", "searched", "url"}]``."""
    rows = []
    for name in names:
        path, searched = find_weights(name)
        rows.append({"name": name, "file": WEIGHTS[name].file, "present": path is not None,
                     "path": str(path) if path else None, "searched": searched, "url": WEIGHTS[name].url})
    return rows


def download_clip(name: str, folder: str | os.PathLike[str] | None = None) -> Path:
    """Download the named model's weights into ``folder`` (default :func:`weights_folder`)
    unless already there; returns the file. The file must match the table's SHA-256; a partial
    download never takes the final name."""
    entry = known(name)
    if entry is None:
        raise SettingsError(f"no weights known for {name!r}; known: {', '.join(WEIGHTS)}")
    target_dir = Path(folder) if folder else weights_folder()
    try:
        return _download(entry.url, target_dir / entry.file, sha256_prefix=entry.sha256)
    except OSError as exc:   # no network, refused, timeout, disk: say what to do instead
        reason = getattr(exc, "reason", None) or exc
        raise WeightsMissingError([(entry.name, entry.file, "clip")], find_weights(entry.name)[1],
                                  f"{entry.url}: {reason}") from None


def _download(url: str, target: Path, sha256_prefix: str = "") -> Path:
    """Fetch ``url`` to ``target`` (with a timeout), verify its SHA-256 starts with the prefix."""
    if target.is_file() and _sha256(target).startswith(sha256_prefix):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        digest = _sha256(Path(tmp))
        if not digest.startswith(sha256_prefix):
            raise WeightsError(f"download of {url} is corrupt: SHA-256 {digest}, expected {sha256_prefix}…; "
                               "try again, or download the file by hand")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def weights_folders() -> list[Path]:
    """The folders a job sent to the engine may name weights files in (``$CLIPASSO_CLIP_DIR``,
    ``~/.cache/clip``, huggingface's cache)."""
    return [*_clip_dirs(), _hf_hub_cache()]


def names_a_file_elsewhere(spec: str) -> bool:
    """True when ``spec`` names a weights file outside ``weights_folders()``. Decided from the
    text of the path alone (links resolved), never from whether the file exists, so an answer
    tells nothing about files elsewhere."""
    spec = spec.strip()
    if spec.startswith("random:") or (not looks_like_path(spec) and known(spec)):
        return False
    where = os.path.realpath(os.path.expanduser(spec))
    for folder in weights_folders():
        root = os.path.realpath(folder)
        if where.startswith(root.rstrip(os.sep) + os.sep):
            return False
    return True
