"""The CLIPasso loss: zero at the photo, batching against shared targets, reduced precision."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from skimage import data

from clipasso_engine.clip_models import get_clip
from clipasso_engine.image import make_canvas
from clipasso_engine.loss import ClipassoLoss
from clipasso_engine.raster import render
from clipasso_engine.strokes import random_strokes


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return make_canvas(Image.fromarray(data.astronaut())).pixels          # (1, 3, 224, 224)


def _loss(spec: str, precision: str = "fp32") -> ClipassoLoss:
    return ClipassoLoss(get_clip(spec), {"layer2": 1.0, "layer3": 1.0}, 0.1, precision)


def test_loss_is_zero_for_the_photo_itself_and_positive_otherwise(photo):
    loss = _loss("random:tiny-RN")
    targets = loss.photo_targets(photo)
    assert loss(photo, targets).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(torch.ones_like(photo), targets).item() > 1e-4


def test_loss_is_the_documented_formula(photo):
    """0.1 · (1 − cos of embeddings) + mean((layer2_s − layer2_p)²) + mean((layer3_s − layer3_p)²),
    computed by hand from the tower's own features."""
    from clipasso_engine.clip_models import normalize

    loss = _loss("random:tiny-RN")
    sketch = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    es, fs = loss.model.features(normalize(sketch), ("layer2", "layer3"))
    ep, fp = loss.model.features(normalize(photo), ("layer2", "layer3"))
    by_hand = 0.1 * (1 - torch.cosine_similarity(es, ep)) + sum((fs[k] - fp[k]).square().mean() for k in ("layer2", "layer3"))
    assert loss(sketch, loss.photo_targets(photo)).item() == pytest.approx(by_hand.item(), rel=1e-4)
    only_semantic = ClipassoLoss(get_clip("random:tiny-RN"), {"layer2": 0.0, "layer3": 0.0}, 0.1)
    assert only_semantic(sketch, only_semantic.photo_targets(photo)).item() == pytest.approx(
        (0.1 * (1 - torch.cosine_similarity(es, ep))).item(), rel=1e-4)


def test_groups_share_targets_without_copies(photo):
    """Sketch i is compared with target i mod K: the same as repeating the targets."""
    loss = _loss("random:tiny-RN")
    views = torch.cat([photo, photo.flip(-1), photo.flip(-2)])                # K = 3 targets
    targets = loss.photo_targets(views)
    sketches = torch.rand(6, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    batched = loss(sketches, targets)
    one_by_one = torch.stack([loss(sketches[i : i + 1], targets.select(torch.tensor([i % 3]))) for i in range(6)]).flatten()
    assert batched.shape == (6,)
    assert torch.allclose(batched, one_by_one, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("spec", ["random:tiny-RN", "random:RN101"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_keeps_control_point_gradients(photo, spec, precision):
    """What the optimizer sees — d loss / d control points through the rasterizer — stays
    aligned with fp32 (measured cosine: bf16 0.998, fp16 0.9999 on random RN101)."""
    pts = random_strokes(1, 16, 224, 224, torch.Generator().manual_seed(0))
    grads = {}
    for prec in ("fp32", precision):
        loss = _loss(spec, prec)
        p = pts.clone().requires_grad_()
        sketch = (1 - render(p, torch.full((1, 16), 3.0), 224, 224)).unsqueeze(1).expand(1, 3, 224, 224)
        (loss(sketch, loss.photo_targets(photo)).sum() * 1024).backward()
        grads[prec] = p.grad.flatten()
    assert grads["fp32"].abs().sum() > 0
    assert torch.cosine_similarity(grads[precision], grads["fp32"], dim=0) > 0.99


def test_bf16_gradients_stay_aligned_along_a_run(photo):
    """Along an fp32 run of random RN101, every step's bf16 control-point
    gradient points where fp32's does (benchmarks/precision.py runs the same over 50 steps)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("precision_bench", Path(__file__).parents[1] / "benchmarks" / "precision.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    start = random_strokes(1, 16, 224, 224, torch.Generator().manual_seed(2))[0]
    cosines = bench.gradient_cosines(photo, start, get_clip("random:RN101"), "bf16", steps=4, bank_size=4)
    assert len(cosines) == 4 and min(cosines) > 0.98


def test_reduced_precision_weights_are_stored_once_and_give_autocasts_numbers(photo):
    """The bf16 loss keeps a copy of the tower with its conv/linear weights in bf16 (autocast
    would cast them on every pass): the same loss and pixel gradients, bit for bit, as autocast
    over the fp32 weights; made once per dtype; the fp32 model stays untouched."""
    import contextlib

    clip = get_clip("random:tiny-RN")
    stored = ClipassoLoss(clip, {"layer2": 1.0, "layer3": 1.0}, 0.1, "bf16")
    assert stored.model is not clip and stored.model is clip.stored_in(torch.bfloat16)
    assert {p.dtype for p in clip.parameters()} == {torch.float32}
    assert stored.model.visual.layer1[0].conv1.weight.dtype == torch.bfloat16
    assert clip.stored_in(torch.float32) is clip and _loss("random:tiny-RN").model is clip

    class Autocast(ClipassoLoss):                   # the plain way: autocast over the fp32 weights
        def __init__(self) -> None:
            super().__init__(clip, {"layer2": 1.0, "layer3": 1.0}, 0.1, "fp32")
            self.precision = "bf16"

        def _autocast(self, device_type: str) -> contextlib.AbstractContextManager:
            return torch.autocast(device_type=device_type, dtype=torch.bfloat16)

    plain = Autocast()
    assert plain.model is clip
    targets = plain.photo_targets(photo)
    ink = render(random_strokes(1, 8, 224, 224, torch.Generator().manual_seed(3)), torch.full((1, 8), 3.0), 224, 224)
    sketch = (1.0 - ink).unsqueeze(1).expand(1, 3, 224, 224)
    results = []
    for loss in (plain, stored):
        x = sketch.detach().clone().requires_grad_()
        value = loss(x, targets)
        value.sum().backward()
        results.append((value.detach(), x.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert results[1][1].abs().sum() > 0
