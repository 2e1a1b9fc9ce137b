"""Labelled images of what a pretext task does: the panels of :mod:`skssl.plotting`.

A task's :meth:`~skssl.task.PretextTask.view_panels` (and
:meth:`~skssl.task.PretextTask.reconstruction_panels`) return a list of
:class:`ViewPanel`, one column of images each; the helpers here build them from
tensors, so that tasks never touch matplotlib.
"""

from dataclasses import dataclass
from typing import Any

import torch

#: The gray of the pixels a panel leaves out: hidden patches, gaps between tiles.
LEFT_OUT = 0.5


@dataclass(frozen=True)
class ViewPanel:
    """One column of a figure of views: an image for every image of a batch.

    Attributes
    ----------
    title : str
        What the column shows (``"view a"``, ``"corrupted input"``).
    images : Tensor of shape (B, C, H, W)
        One image per image of the batch, on the [0, 1] scale; 1 channel is drawn
        gray, 3 (or 4) as RGB(A). Columns may differ in size (tiles, cells).
    captions : tuple of str or None, default=None
        A caption under each image (its label), or None.
    """

    title: str
    images: torch.Tensor
    captions: tuple | None = None


def captions(template: str, labels: torch.Tensor | None) -> tuple | None:
    """``template.format(label)`` for every label of a 1-D tensor; None for None."""
    return None if labels is None else tuple(template.format(label) for label in labels.tolist())


def image_panels(titles: str | list, images: Any, n_images: int, labels: Any = None) -> list[ViewPanel]:
    """``images`` ``(k * n_images, C, H, W)``, the first image of every source image
    first, as ``k`` panels; no panel when ``images`` is anything else.

    ``titles`` are one per panel, or a single title (numbered when ``k > 1``).
    ``labels``, integer labels ``(k * n_images,)`` or ``(n_images,)``, caption the
    images; anything else is left out.
    """
    if not (isinstance(images, torch.Tensor) and images.ndim == 4 and len(images) % n_images == 0):
        return []
    blocks = images.split(n_images)
    if isinstance(titles, str):
        titles = [titles] if len(blocks) == 1 else [f"{titles} {i}" for i in range(1, len(blocks) + 1)]
    label_blocks = [None] * len(blocks)
    if (
        isinstance(labels, torch.Tensor)
        and labels.ndim == 1
        and not labels.is_floating_point()
        and len(labels) in (n_images, len(images))
    ):
        label_blocks = labels.split(n_images) if len(labels) == len(images) else [labels] * len(blocks)
    return [
        ViewPanel(title, block, captions("label {}", block_labels))
        for title, block, block_labels in zip(titles, blocks, label_blocks)
    ]


def mosaic(tiles: torch.Tensor, grid: tuple, cells: torch.Tensor | None = None, gap: int = 1) -> torch.Tensor:
    """Tiles laid out on a grid, ``gap`` pixels apart: one image per image of a batch.

    Parameters
    ----------
    tiles : Tensor of shape (B, K, C, h, w)
    grid : tuple of 2 int
        ``(rows, columns)`` of cells.
    cells : Tensor of shape (B, K) or None
        The row-major cell of every tile; None puts tile ``k`` in cell ``k``. Cells
        without a tile, and the gaps, are :data:`LEFT_OUT` gray.
    gap : int, default=1

    Returns
    -------
    Tensor of shape (B, C, rows * (h + gap) - gap, columns * (w + gap) - gap)

    Examples
    --------
    >>> import torch
    >>> mosaic(torch.ones(2, 4, 1, 3, 3), (2, 2)).shape
    torch.Size([2, 1, 7, 7])
    """
    n, k, channels, height, width = tiles.shape
    rows, columns = grid
    if cells is None:
        cells = torch.arange(k, device=tiles.device).expand(n, k)
    canvas = tiles.new_full((n, channels, rows * (height + gap) - gap, columns * (width + gap) - gap), LEFT_OUT)
    for image in range(n):
        for tile, cell in zip(tiles[image], cells[image].tolist()):
            top, left = (cell // columns) * (height + gap), (cell % columns) * (width + gap)
            canvas[image, :, top : top + height, left : left + width] = tile
    return canvas
