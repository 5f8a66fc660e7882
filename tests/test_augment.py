"""Augmentations: one homography per augmentation, shared by sketch and photo."""

from __future__ import annotations

import torch

from clipasso_engine import augment


def test_draw_is_deterministic_and_varied():
    a = augment.draw(8, 224, torch.Generator().manual_seed(3))
    b = augment.draw(8, 224, torch.Generator().manual_seed(3))
    c = augment.draw(8, 224, torch.Generator().manual_seed(4))
    assert a.shape == (8, 3, 3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a[0], a[1])


def test_same_matrix_moves_sketch_and_photo_alike():
    """A dot drawn in two different images lands on the same output pixel."""
    mats = augment.draw(4, 64, torch.Generator().manual_seed(0))
    sketch = torch.zeros(1, 3, 64, 64)
    photo = torch.zeros(1, 3, 64, 64)
    sketch[..., 30:33, 20:23] = 1.0
    photo[..., 30:33, 20:23] = 0.5
    ws, wp = augment.apply(sketch, mats), augment.apply(photo, mats)
    assert ws.shape == (4, 3, 64, 64)
    for i in range(4):
        assert torch.equal(ws[i].argmax(), wp[i].argmax())
        # where the homography sends the dot's centre (21.5, 31.5 in pixel-centre coords)
        p = mats[i] @ torch.tensor([21.0, 31.0, 1.0])
        x, y = (p[:2] / p[2]).round().long().tolist()
        assert ws[i, 0, y, x] > 0.2


def test_black_fill_outside_the_source():
    mats = augment.draw(16, 224, torch.Generator().manual_seed(1))
    white = torch.ones(1, 3, 224, 224)
    out = augment.apply(white, mats)
    # perspective pulls corners inwards: pure black fill appears in most views
    assert (out.amin(dim=(1, 2, 3)) == 0).sum() >= 12


def test_gradients_flow_through_the_warp():
    img = torch.rand(2, 3, 32, 32, requires_grad=True)
    augment.apply(img, augment.draw(3, 32, torch.Generator().manual_seed(2))).sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
