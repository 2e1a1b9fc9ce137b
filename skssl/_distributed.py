"""Data-parallel training across processes on PyTorch's own distributed engine.

``fit`` run under ``torchrun --nproc_per_node=N`` (or in processes that called
``torch.distributed.init_process_group``) trains one model on N processes: every
process draws the same shuffled order, takes its share of each global batch, and
``DistributedDataParallel`` averages the gradients. Contrastive methods gather their
embeddings from every process so that the negatives span the global batch. Only the
main process writes checkpoints and prints.
"""

import atexit
import os

import torch
import torch.distributed as dist


def world():
    """``(rank, world_size)`` of this process; ``(0, 1)`` when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process():
    return world()[0] == 0


def init_from_environment(device):
    """Join the process group ``torchrun`` describes in the environment, once.

    Does nothing outside ``torchrun`` (no ``WORLD_SIZE`` > 1) or when the caller has
    already initialised a group. NCCL on CUDA, gloo on the CPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() or dist.is_initialized():
        return
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    atexit.register(_leave)  # the group skssl joined, skssl leaves: no teardown at interpreter exit


def _leave():
    if dist.is_initialized():
        dist.destroy_process_group()


def local_device(device):
    """Under ``torchrun`` on GPUs, ``cuda`` means this process's own GPU."""
    if device.type == "cuda" and device.index is None and world()[1] > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands every process the summed gradient of its own rows."""

    @staticmethod
    def forward(ctx, tensor):
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads):
        grads = torch.stack(grads)
        dist.all_reduce(grads)
        return grads[dist.get_rank()]


def gather_with_grad(tensor):
    """Concatenate ``tensor`` from every process along dim 0, gradients flowing back.

    One process: ``tensor`` itself. Every process then computes the loss over the
    global batch; the gradient reaching each process's own rows sums over the
    processes' identical losses, and DDP's averaging turns that back into the
    single-process gradient.
    """
    if world()[1] == 1:
        return tensor
    return torch.cat(_GatherWithGrad.apply(tensor))


@torch.no_grad()
def gather(tensor):
    """Concatenate ``tensor`` from every process along dim 0 (no gradient)."""
    _, world_size = world()
    if world_size == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def shard(indices):
    """This process's share of a global batch's ``indices``."""
    rank, world_size = world()
    return indices if world_size == 1 else indices.tensor_split(world_size)[rank]


def wrap(task):
    """``task`` in ``DistributedDataParallel`` when there is more than one process."""
    if world()[1] == 1:
        return task
    device = task.backbone.mean.device
    return torch.nn.parallel.DistributedDataParallel(task, device_ids=[device.index] if device.type == "cuda" else None)


@torch.no_grad()
def broadcast_buffers(module):
    """Make every process's buffers the main process's: batch-norm statistics, queues,
    centres and the like, which each process updates from its own share of the batch.

    ``DistributedDataParallel`` broadcasts them before each forward pass; after the
    last step they differ again, so the loop calls this at the end of every epoch:
    any process can then embed, save or resume, with the same model.
    """
    if world()[1] == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def all_mean(value):
    """The mean of a scalar tensor over the processes (the epoch loss every rank reports)."""
    if world()[1] == 1:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / world()[1]
