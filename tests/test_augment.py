"""Augmentations: one homography per augmentation, shared by sketch and photo."""

from __future__ import annotations

import pytest
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


def test_two_passes_draw_the_same_maps_unfolded():
    """passes=2 keeps the perspective and the crop apart; composed they are the one-pass map."""
    one = augment.draw(6, 224, torch.Generator().manual_seed(5))
    two = augment.draw(6, 224, torch.Generator().manual_seed(5), passes=2)
    assert two.shape == (6, 2, 3, 3)
    torch.testing.assert_close(two[:, 1] @ two[:, 0], one)
    crop = two[:, 1]                                      # a pure scale and shift
    assert torch.equal(crop[:, 0, 1], torch.zeros(6)) and torch.equal(crop[:, 2], torch.tensor([0.0, 0.0, 1.0]).expand(6, 3))


def test_two_passes_resample_twice():
    """Two passes = the perspective warp, then the crop warp of its result; the same geometry as
    one pass, but each bilinear resampling blurs, so fine detail loses contrast."""
    gen = torch.Generator().manual_seed(6)
    mats = augment.draw(4, 96, gen, passes=2)
    noise = torch.rand(1, 3, 96, 96, generator=gen)
    two = augment.apply(noise, mats)
    assert two.shape == (4, 3, 96, 96)
    torch.testing.assert_close(two, torch.cat([augment.apply(augment.apply(noise, mats[i:i + 1, 0]), mats[i:i + 1, 1])
                                               for i in range(4)]))
    one = augment.apply(noise, mats[:, 1] @ mats[:, 0])
    inside = (one > 0).all(1, keepdim=True) & (two > 0).all(1, keepdim=True)    # away from the black fill
    def roughness(x):
        return ((x[..., 1:] - x[..., :-1]).abs() * inside[..., 1:]).sum()
    assert roughness(two) < 0.9 * roughness(one)
    # same geometry: a dot lands on the same pixel either way
    dot = torch.zeros(1, 3, 96, 96)
    dot[..., 40:43, 50:53] = 1.0
    for a, b in zip(augment.apply(dot, mats), augment.apply(dot, mats[:, 1] @ mats[:, 0])):
        ya, xa = divmod(int(a[0].argmax()), 96)
        yb, xb = divmod(int(b[0].argmax()), 96)
        assert abs(ya - yb) <= 1 and abs(xa - xb) <= 1


def test_apply_each_warps_each_image_by_its_own_maps():
    gen = torch.Generator().manual_seed(7)
    imgs = torch.rand(3, 3, 32, 32, generator=gen)
    mats = torch.stack([augment.draw(2, 32, gen, passes=2) for _ in range(3)])   # (3, 2, 2, 3, 3)
    out = augment.apply_each(imgs, mats)
    assert out.shape == (6, 3, 32, 32)
    for i in range(3):
        torch.testing.assert_close(out[2 * i:2 * i + 2], augment.apply(imgs[i:i + 1], mats[i]))


def test_a_stream_per_seed_does_not_depend_on_the_other_seeds():
    """One stream per seed (the paper preset): seed 1000's draws are the same alone or as the
    second of three seeds, draw after draw; the levels of one seed share its stream."""
    alone = augment.Streams([1000], 1000, per_seed=True)
    three = augment.Streams([0, 1000, 2000, 0, 1000, 2000], 0, per_seed=True)   # 2 levels × 3 seeds
    assert three.count == 3 and three.index.tolist() == [0, 1, 2, 0, 1, 2]
    for _ in range(3):
        assert torch.equal(alone.draw(4, 224, passes=2)[0], three.draw(4, 224, passes=2)[1])
        assert torch.equal(alone.pick(16, 4)[0], three.pick(16, 4)[1])
    run = augment.Streams([0, 1000, 2000], 0, per_seed=False)                   # one stream for the run
    assert run.count == 1 and run.index.tolist() == [0, 0, 0]
    assert torch.equal(run.draw(4, 224)[0], augment.draw(4, 224, torch.Generator().manual_seed(0)))


def test_stream_states_round_trip_and_refuse_another_job():
    s = augment.Streams([0, 1000], 0, per_seed=True)
    s.draw(2, 64)
    state = s.get_state()
    assert state.shape[0] == 2
    expected = s.draw(3, 64)
    t = augment.Streams([0, 1000], 0, per_seed=True)
    t.set_state(state)
    assert torch.equal(t.draw(3, 64), expected)
    with pytest.raises(ValueError, match="another job"):
        augment.Streams([0], 0, per_seed=True).set_state(state)
    assert augment.Streams([0], 0, per_seed=False).get_state().dim() == 1       # the format of older checkpoints


@pytest.mark.parametrize("passes", [1, 2])
def test_no_augmentation_is_an_empty_batch(passes):
    mats = augment.draw(0, 32, torch.Generator().manual_seed(8), passes=passes)
    assert augment.apply(torch.rand(2, 3, 32, 32), mats).shape == (0, 3, 32, 32)
    assert augment.apply_each(torch.rand(2, 3, 32, 32), torch.stack([mats, mats])).shape == (0, 3, 32, 32)
