"""The whole method through the Python API, with tiny random CLIP towers (fast, CPU).

The photos are real (scikit-image samples); only the CLIP weights are random, so these tests
check the machinery — the loss falls, seeds, levels, locks, determinism, cancel — never
the artistic quality of a sketch.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from clipasso_engine import SketchSettings, Stroke, sketch

TINY = {"clip": "random:tiny-RN", "saliency_clip": "random:tiny-ViT", "device": "cpu"}


def settings(**kw) -> SketchSettings:
    base = dict(TINY, preset="fast", iterations=30, eval_every=5, strokes=8, early_stop=False)
    base.update(kw)
    return SketchSettings(**base)


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return data.chelsea()           # 300 × 451 RGB, a real photo


def test_loss_falls_and_strokes_are_in_photo_pixels(cat):
    res = sketch(cat, settings(iterations=60))
    losses = [h["loss"] for h in res.history]
    assert [h["iteration"] for h in res.history] == list(range(0, 60, 5)) + [59]
    assert losses[-1] < 0.9 * losses[0], losses
    assert (res.width, res.height) == (451, 300)
    assert len(res.strokes) == 8
    pts = np.array([s.points for s in res.strokes])
    assert pts[:, 0, 0].min() >= 0 and pts[:, 0, 0].max() <= 451          # starts inside the photo
    assert pts[:, 0, 1].min() >= 0 and pts[:, 0, 1].max() <= 300
    assert all(s.width == pytest.approx(3.0 * 451 / 224, rel=1e-3) for s in res.strokes)
    assert res.engine["random_weights"] is True
    assert "RANDOM CLIP WEIGHTS" in res.to_svg()


def test_best_seed_has_the_lowest_loss(cat):
    res = sketch(cat, settings(seeds=3, iterations=10))
    losses = {int(k): v for k, v in res.level_meta[8]["seed_losses"].items()}
    assert sorted(losses) == [0, 1000, 2000]
    assert len(set(losses.values())) == 3
    assert res.seed == min(losses, key=losses.get)
    assert res.loss == min(losses.values())


def test_same_seed_same_strokes_and_other_seed_differs(cat):
    a = sketch(cat, settings(iterations=10, seed=7))
    b = sketch(cat, settings(iterations=10, seed=7))
    c = sketch(cat, settings(iterations=10, seed=8))
    assert a.strokes == b.strokes
    assert a.strokes != c.strokes


def test_levels_come_out_with_their_stroke_counts(cat):
    res = sketch(cat, settings(levels=[4, 2, 6], iterations=5))
    assert sorted(res.levels) == [2, 4, 6]
    assert [len(res.levels[n]) for n in (2, 4, 6)] == [2, 4, 6]
    assert res.strokes == res.levels[6]
    svg = res.to_svg()
    assert svg.count('inkscape:groupmode="layer"') == 3
    assert res.to_json()["levels"].keys() == {"2", "4", "6"}


def test_locked_strokes_do_not_move(cat):
    init = [
        Stroke(points=((40 + 30 * i, 50), (60 + 30 * i, 80), (80 + 30 * i, 90), (90 + 30 * i, 150)), width=5.0, color="#112233")
        for i in range(5)
    ]
    res = sketch(cat, settings(iterations=15), init_strokes=init, locked=[0, 3])
    assert len(res.strokes) == 5
    assert res.strokes[0] == init[0] and res.strokes[3] == init[3]
    moved = [i for i in (1, 2, 4) if res.strokes[i].points != init[i].points]
    assert moved == [1, 2, 4]
    assert all(s.color == "#112233" and s.width == pytest.approx(5.0) for s in res.strokes)


def test_should_stop_cancels_and_progress_reports_previews(cat):
    seen = []

    def on_progress(it, loss, preview):
        seen.append((it, loss, preview))

    res = sketch(cat, settings(iterations=100), on_progress=on_progress, should_stop=lambda: len(seen) >= 4)
    assert res.engine["stopped"] == "cancelled"
    assert res.engine["iterations"] == 4
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert all(len(p) == 8 and isinstance(p[0], Stroke) for _, _, p in seen)


def test_early_stop_ends_a_flat_run(cat):
    res = sketch(cat, settings(iterations=400, early_stop=True, patience=2, min_improvement=0.5, eval_every=2))
    assert res.engine["stopped"] == "early_stop"
    assert res.engine["iterations"] < 400


def test_tall_photo_and_off_canvas_start_strokes():
    """A portrait photo's strokes come back inside it; init strokes wholly off the photo (all
    culled by the rasterizer) do not break the step."""
    tall = np.full((400, 150, 3), 230, np.uint8)
    tall[100:300, 40:110] = 20
    res = sketch(tall, settings(iterations=6, strokes=6))
    pts = np.array([s.points for s in res.strokes])
    assert (res.width, res.height) == (150, 400)
    assert 0 <= pts[:, 0, 0].min() and pts[:, 0, 0].max() <= 150 and 0 <= pts[:, 0, 1].min() and pts[:, 0, 1].max() <= 400
    away = [Stroke(points=((-900, -900), (-890, -900), (-880, -900), (-870, -900)))]
    assert sketch(tall, settings(iterations=3), init_strokes=away).strokes == away     # nothing to move it


def test_levels_with_several_seeds_pick_per_level(cat):
    res = sketch(cat, settings(levels=[2, 3], seeds=2, iterations=4))
    for n in (2, 3):
        losses = {int(k): v for k, v in res.level_meta[n]["seed_losses"].items()}
        assert sorted(losses) == [0, 1000] and res.level_meta[n]["seed"] == min(losses, key=losses.get)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"strokes": 0}, "greater than or equal to 1"),
        ({"iterations": 10**9}, "less than or equal"),
        ({"levels": [4, 0]}, "stroke count from 1"),
        ({"width": -1}, "greater than 0"),
        ({"preset": "turbo"}, "fast"),
        ({"colour": "red"}, "Extra inputs"),
        ({"aug_bank": 2, "augmentations": 4}, "at least augmentations"),
        ({"geometric_weights": {"layer2": -1.0}}, "numbers from 0 to 1000"),
    ],
)
def test_bad_settings_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        SketchSettings(**kw)


def test_presets_fill_only_what_is_not_set():
    assert SketchSettings(preset="paper").model_dump(include={"iterations", "seeds", "aug_bank", "early_stop"}) == {
        "iterations": 2001, "seeds": 3, "aug_bank": 0, "early_stop": False}
    # the reference's augmentation: two resamplings, one stream per seed; only in `paper`
    assert (SketchSettings(preset="paper").aug_passes, SketchSettings(preset="paper").aug_streams) == (2, "seed")
    for name in ("fast", "standard"):
        assert (SketchSettings(preset=name).aug_passes, SketchSettings(preset=name).aug_streams) == (1, "run")
    s = SketchSettings(preset="fast", iterations=7)
    assert (s.iterations, s.seeds, s.early_stop) == (7, 1, True)
    assert SketchSettings(preset="paper").seed_list == [0, 1000, 2000]


@pytest.mark.parametrize("kw, at", [
    (dict(levels=[2, 4], seeds=2, aug_bank=8, augmentations=2), (1, 7, 18)),             # bank draws, 4 groups
    (dict(aug_bank=0, augmentations=2, early_stop=True, patience=2, eval_every=2,        # fresh draws, early stop
          min_improvement=0.5), (2, 4)),
    (dict(levels=[2, 4], seeds=2, aug_bank=0, augmentations=2, aug_passes=2,             # paper: a stream per
          aug_streams="seed"), (3, 11)),                                                 # seed, two passes
    (dict(seeds=2, aug_bank=4, augmentations=2, aug_streams="seed"), (5,)),              # a bank per seed
])
def test_resumed_run_ends_exactly_as_the_uninterrupted_one(cat, kw, at):
    """A checkpoint holds all the loop's state (points, Adam moments and step, best so far, early-stop
    counters, history, augmentation RNG): resuming from any of them (through bytes, as on disk)
    gives the very same strokes, losses, history and stop as the run that was never interrupted."""
    s = settings(iterations=24, strokes=4, **kw)
    states = []
    whole = sketch(cat, s, on_checkpoint=lambda st: states.append(st.to_bytes()), checkpoint_seconds=0)
    from clipasso_engine.optimize import LoopState

    iterations = [LoopState.from_bytes(b).iteration for b in states]
    assert iterations == list(range(whole.engine["iterations"]))                   # one per step
    for k in at:
        resumed = sketch(cat, s, resume=LoopState.from_bytes(states[k]))
        assert resumed.to_json()["levels"] == whole.to_json()["levels"], k
        assert resumed.level_meta == whole.level_meta and resumed.history == whole.history
        assert resumed.engine["iterations"] == whole.engine["iterations"]
        assert resumed.engine["stopped"] == whole.engine["stopped"]
    if kw.get("early_stop"):
        assert whole.engine["stopped"] == "early_stop" and whole.engine["iterations"] < 24


def test_stopping_hands_over_a_last_checkpoint_and_bad_ones_are_refused(cat):
    from clipasso_engine.optimize import LoopState

    states: list[LoopState] = []
    steps: list[int] = []
    res = sketch(cat, settings(iterations=50, strokes=4), on_checkpoint=states.append, checkpoint_seconds=3600,
                 on_progress=lambda it, *_: steps.append(it), should_stop=lambda: len(steps) >= 5)
    assert res.engine["stopped"] == "cancelled" and [st.iteration for st in states] == [5]
    data = states[0].to_bytes()
    for broken in (data[: len(data) // 2], b"", b"not a checkpoint"):
        with pytest.raises(ValueError, match="not a readable checkpoint"):
            LoopState.from_bytes(broken)
    with pytest.raises(ValueError, match="another job"):
        sketch(cat, settings(iterations=50, strokes=5), resume=states[0])


@pytest.mark.parametrize("bank", [0, 6])
def test_with_a_stream_per_seed_a_seed_runs_alike_alone_or_beside_others(cat, bank):
    """aug_streams="seed" (the paper preset): seed 1000 sees the same augmentations whether it
    runs alone or as the second of two seeds, so its strokes move alike (up to float noise of a
    different CLIP batch); with one stream for the run they do not."""
    def seed_1000(group, **kw):
        states = []
        sketch(cat, settings(iterations=8, strokes=4, augmentations=2, aug_bank=bank, aug_passes=2, **kw),
               on_checkpoint=states.append, checkpoint_seconds=0)
        return states[-1].points[group]                 # (4, 4, 2) canvas px after 7 steps

    alone = seed_1000(0, seeds=1, seed=1000, aug_streams="seed")
    beside = seed_1000(1, seeds=2, seed=0, aug_streams="seed")
    assert (beside - alone).abs().max() < 1e-2
    shared = seed_1000(1, seeds=2, seed=0, aug_streams="run")        # seed 1000 now sees seed 0's stream
    assert (shared - alone).abs().max() > 0.1
