"""Counting: its views, its loss against a slow reference and the task's contrast of
each image with the next, an MLP backbone. (Its tiles are tested in test_tiles.py.)"""

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from skssl.backbones import pool
from skssl.losses import counting_loss
from skssl.methods.counting import DOWNSAMPLING, CountingFeaturizer

from _testing import FAST

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)


def _untrained(cls, X=X_DIGITS[:64], **kwargs):
    return cls(**{**FAST, "max_epochs": 0, **kwargs}).fit(X)


def _unit_batch(n=5):
    return torch.as_tensor(X_DIGITS[:n], dtype=torch.float32).view(n, 1, 8, 8) / 16.0


def test_counting_views_are_the_quarters_and_the_randomly_shrunk_whole():
    task = _untrained(CountingFeaturizer).task_
    batch = _unit_batch()
    inputs, _ = task.views(batch, torch.Generator().manual_seed(5))
    replay = torch.Generator().manual_seed(5)
    torch.randint(1, (5, 4), generator=replay), torch.randint(1, (5, 4), generator=replay)  # no jitter
    methods = torch.randint(len(DOWNSAMPLING), (5,), generator=replay)
    upsampled = F.interpolate(batch, size=(16, 16), mode="bilinear", align_corners=False)
    whole, tiles = inputs[:5], inputs[5:].view(5, 4, 1, 8, 8)
    for b in range(5):
        for j, (top, left) in enumerate([(0, 0), (0, 8), (8, 0), (8, 8)]):
            torch.testing.assert_close(tiles[b, j], upsampled[b, :, top : top + 8, left : left + 8])
        shrunk = F.interpolate(upsampled[b : b + 1], size=(8, 8), **DOWNSAMPLING[int(methods[b])])
        torch.testing.assert_close(whole[b], shrunk[0])
    assert len({int(m) for m in methods}) > 1


def counting_loss_reference(whole, tiles, other, margin):
    """Eq. (5) of Noroozi et al. 2017, one image and one count at a time."""
    total = 0.0
    for b in range(len(whole)):
        summed = [sum(float(tile[d]) for tile in tiles[b]) for d in range(whole.shape[1])]
        agree = sum((float(whole[b, d]) - summed[d]) ** 2 for d in range(len(summed)))
        apart = sum((float(other[b, d]) - summed[d]) ** 2 for d in range(len(summed)))
        total += agree + max(0.0, margin - apart)
    return total / len(whole)


@pytest.mark.parametrize("margin", [0.5, 3.0, 10.0])  # apart: 0.7 to 5.6, so the hinge acts on 0, 3, 6 rows
def test_counting_loss_matches_reference(margin):
    g = torch.Generator().manual_seed(0)
    whole, tiles = torch.rand(6, 5, generator=g), torch.rand(6, 4, 5, generator=g) / 4
    other = 2 * torch.rand(6, 5, generator=g)
    expected = counting_loss_reference(whole, tiles, other, margin)
    assert float(counting_loss(whole, tiles, other, margin)) == pytest.approx(expected, rel=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = counting_loss(whole, tiles, other, margin)
    assert value.dtype == torch.float32


def test_counting_task_contrasts_each_image_with_the_next():
    task = _untrained(CountingFeaturizer).task_  # eval mode: batch norm uses its running stats
    inputs, targets = task.views(_unit_batch(6), torch.Generator().manual_seed(0))
    with torch.no_grad():
        counts = task.counter(pool(task.backbone(inputs), "avg"))
        expected = counting_loss_reference(counts[:6], counts[6:].view(6, 4, -1), counts[:6].roll(1, 0), 10.0)
        assert float(task.loss(inputs, targets)) == pytest.approx(expected, rel=1e-4)


def test_counting_takes_an_mlp_where_tiles_have_the_image_size():
    # 8x8 digits are counted on 8x8 quarters of their 2x upsampled version
    featurizer = CountingFeaturizer(**{**FAST, "backbone": "mlp"}).fit(X_DIGITS[:32])
    assert featurizer.transform(X_DIGITS[:32]).shape == (32, 512)  # layer="auto": the stage before the last
