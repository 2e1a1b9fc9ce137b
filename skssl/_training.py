"""The training loop every pretext method shares.

The whole training set sits on the training device (uint8 stays uint8); a batch is
a slice of a ``randperm`` drawn from the fit's own generator, scaled to [0, 1] there,
and handed to the task, which builds its views and returns the loss. There is no
DataLoader and no worker process: for images this small, the model is the cost.
"""

import math
import sys
import time

import torch


def to_unit(batch, value_range):
    """Map raw pixel values onto [0, 1] as float32."""
    low, high = value_range
    return (batch.float() - low) / (high - low)


def train(task, images, *, value_range, batch_size, max_epochs, learning_rate,
          weight_decay, generator, verbose=0):
    """Fit ``task`` on ``images`` and return the per-epoch history.

    Parameters
    ----------
    task : nn.Module
        ``task(batch, generator)`` returns the scalar pretext loss of a [0, 1] batch.
    images : Tensor of shape (n, C, H, W)
        The training set, already on the training device.
    value_range : tuple of float
        ``(low, high)`` raw values mapped to 0 and 1.
    batch_size : int
        Source images per step; the last incomplete batch of an epoch is dropped
        unless it is the only one.
    max_epochs : int
        Passes over ``images``.
    learning_rate, weight_decay : float
        AdamW settings; the learning rate follows a cosine decay over all steps.
    generator : torch.Generator
        On the training device; drives shuffling and the task's randomness.
    verbose : int, default=0
        Print one line per epoch when > 0.

    Returns
    -------
    history : list of dict
        ``{"epoch", "loss", "seconds"}`` per completed epoch.
    """
    n_images = images.shape[0]
    batch_size = min(batch_size, n_images)
    steps_per_epoch = n_images // batch_size
    optimizer = torch.optim.AdamW(task.parameters(), lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, steps_per_epoch * max_epochs)
    )
    device_type = images.device.type
    autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda")
    history = []
    task.train()
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(n_images, generator=generator, device=images.device)
        total = torch.zeros((), device=images.device)
        for step in range(steps_per_epoch):
            batch = to_unit(images[order[step * batch_size:(step + 1) * batch_size]], value_range)
            with autocast:
                loss = task(batch, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.detach()
        epoch_loss = float(total) / steps_per_epoch  # the one host sync per epoch
        if not math.isfinite(epoch_loss):
            raise ValueError(
                f"The pretext loss became {epoch_loss} in epoch {epoch}; training "
                f"diverged. Use a smaller learning_rate (now {learning_rate:g})."
            )
        history.append(
            {"epoch": epoch, "loss": epoch_loss, "seconds": time.perf_counter() - start}
        )
        if verbose:
            print(
                f"epoch {epoch:>3}/{max_epochs}  loss {epoch_loss:.4f}  "
                f"{history[-1]['seconds']:.1f}s",
                file=sys.stderr,
                flush=True,
            )
    task.eval()
    return history
