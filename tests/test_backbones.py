"""The vit_tiny backbone: stages, token grids, patch sizes, padding, pooling, and its use
by a featurizer other than MAE."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skssl.backbones import BACKBONES, Backbone, build_stages, grid_positions, pool, sincos_positions, vit_tiny
from skssl.methods.simclr import SimCLRFeaturizer


def _images(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_vit_tiny_is_a_named_backbone():
    assert "vit_tiny" in BACKBONES
    stages = build_stages("vit_tiny", (1, 8, 8))
    assert [name for name, _ in stages.named_children()] == [
        "patch_embed",
        "block1",
        "block2",
        "block3",
        "block4",
        "norm",
    ]


@pytest.mark.parametrize(
    "in_shape, patch, grid",
    [
        ((1, 8, 8), (2, 2), (4, 4)),  # digits
        ((1, 28, 28), (4, 4), (7, 7)),  # MNIST
        ((3, 32, 32), (4, 4), (8, 8)),  # CIFAR, colour
        ((1, 16, 16), (2, 2), (8, 8)),
        ((3, 64, 48), (8, 8), (8, 6)),
        ((1, 1, 5), (1, 2), (1, 3)),  # a 1 x 5 row of a table: 1 x 2 patches, padded
        ((1, 1, 1), (1, 1), (1, 1)),
    ],
)
def test_stage_outputs_are_token_grids(in_shape, patch, grid):
    stages = vit_tiny(in_shape)
    assert stages.patch_embed.patch_size == patch and stages.patch_embed.grid == grid
    backbone = Backbone(stages, in_shape, [0.5] * in_shape[0], [0.25] * in_shape[0]).eval()
    x = _images(3, *in_shape)
    for name in backbone.stage_names:
        assert backbone(x, upto=name).shape == (3, 192, *grid), name
    assert backbone.pooled_size("avg") == 192
    assert backbone.pooled_size("flatten") == 192 * grid[0] * grid[1]


def test_avg_pool_averages_over_tokens_not_dimensions():
    backbone = Backbone(vit_tiny((1, 8, 8)), (1, 8, 8), [0.5], [0.25]).eval()
    with torch.no_grad():
        grid = backbone(_images(5, 1, 8, 8))  # (B, D, h, w)
    tokens = grid.flatten(2).transpose(1, 2)  # (B, N, D)
    torch.testing.assert_close(pool(grid, "avg"), tokens.mean(dim=1))
    torch.testing.assert_close(pool(grid, "flatten"), grid.flatten(1))


def test_blocks_on_grids_equal_blocks_on_token_sequences():
    stages = vit_tiny((1, 8, 8)).eval()
    grid = torch.randn(2, 192, 4, 4, generator=torch.Generator().manual_seed(0))
    tokens = grid.flatten(2).transpose(1, 2)
    with torch.no_grad():
        for stage in (stages.block1, stages.norm):
            torch.testing.assert_close(stage(grid).flatten(2).transpose(1, 2), stage.tokens(tokens))


def test_backbone_kwargs_size_the_network():
    stages = build_stages("vit_tiny", (1, 28, 28), {"depth": 2, "embed_dim": 64, "heads": 2, "patch_size": 7})
    assert list(dict(stages.named_children())) == ["patch_embed", "block1", "block2", "norm"]
    assert stages(_images(2, 1, 28, 28)).shape == (2, 64, 4, 4)


def test_sides_not_a_multiple_of_the_patch_are_zero_padded():
    stages = vit_tiny((1, 10, 10), patch_size=4)  # 10 = 4 + 4 + 2: a third, padded patch
    assert stages.patch_embed.grid == (3, 3)
    x = _images(1, 1, 10, 10)
    padded = torch.zeros(1, 1, 12, 12)
    padded[..., :10, :10] = x
    torch.testing.assert_close(stages.patch_embed.pad(x), padded)


@pytest.mark.parametrize(
    "kwargs", [{"embed_dim": 190}, {"embed_dim": 192, "heads": 5}, {"depth": 0}, {"patch_size": 0}]
)
def test_bad_sizes_raise_a_clear_error(kwargs):
    with pytest.raises(ValueError, match="vit_tiny's"):
        vit_tiny((1, 8, 8), **kwargs)


def test_positions_are_fixed_two_dimensional_sines_and_cosines():
    positions = sincos_positions(8, (3, 4))  # (D, h, w)
    assert positions.shape == (8, 3, 4)
    # dimensions 0-3: sin and cos of the row at frequencies 1 and 1/100; 4-7: of the column
    rows, columns = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    for offset, position in ((0, rows), (4, columns)):
        for index, frequency in enumerate((1.0, 0.01)):
            torch.testing.assert_close(positions[offset + index], torch.sin(frequency * position))
            torch.testing.assert_close(positions[offset + 2 + index], torch.cos(frequency * position))


@pytest.mark.parametrize("grid", [(4, 4), (7, 7), (1, 5)])
def test_grid_positions_are_centred_unit_scale_and_distinct(grid):
    positions = grid_positions(192, grid)
    raw = sincos_positions(192, grid)
    torch.testing.assert_close(positions.mean(dim=(1, 2)), torch.zeros(192), atol=1e-5, rtol=0)
    assert float(positions.pow(2).mean()) == pytest.approx(1.0, rel=1e-5)
    centred = raw - raw.mean(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(positions, centred / centred.pow(2).mean().sqrt())
    tokens = positions.flatten(1).T
    assert torch.unique(tokens, dim=0).shape[0] == grid[0] * grid[1]  # every position differs
    assert torch.equal(grid_positions(8, (1, 1)), torch.zeros(8, 1, 1))
    assert "positions" not in vit_tiny((1, 8, 8)).state_dict()  # recomputed, not stored


def test_other_featurizers_can_use_vit_tiny():
    X = load_digits().data[:64]
    featurizer = SimCLRFeaturizer(backbone="vit_tiny", max_epochs=1, batch_size=32, device="cpu", random_state=0)
    features = featurizer.fit_transform(X)
    assert featurizer.pool_ == "avg" and featurizer.layer_ == "norm"
    assert features.shape == (64, 192) and np.isfinite(features).all()
    # 64 tokens: SimCLR works on 8x8 digits enlarged to 16x16
    assert featurizer.set_params(pool="flatten").fit_transform(X).shape == (64, 192 * 64)


@pytest.mark.parametrize("in_shape, n_features", [((1, 28, 28), 128 * 2 * 2), ((1, 8, 8), 128 * 2 * 2)])
def test_wide_cnn_is_the_small_cnn_with_other_widths(in_shape, n_features):
    wide, small = build_stages("wide_cnn", in_shape), build_stages("small_cnn", in_shape)
    assert [name for name, _ in wide.named_children()] == [name for name, _ in small.named_children()]
    assert [m.out_channels for m in wide.modules() if isinstance(m, torch.nn.Conv2d)] == [32, 64, 128]
    assert wide(_images(2, *in_shape)).flatten(1).shape == (2, n_features)


def test_wide_cnn_is_flattened_like_the_small_cnn():
    X = load_digits().data[:40]
    featurizer = SimCLRFeaturizer(backbone="wide_cnn", max_epochs=0, random_state=0).fit(X)
    assert featurizer.pool_ == "flatten"
    assert featurizer.transform(X).shape == (40, 512)
