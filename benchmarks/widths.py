"""Step time of the three-stage CNN at several widths, A/B interleaved.

    OMP_NUM_THREADS=1 python benchmarks/widths.py --rounds 7

One training step (forward, backward, fused AdamW) of ``small_cnn`` at each width,
channels-last as skssl trains it, on MNIST-sized inputs with a linear head on the
flattened last stage. The widths run in turn within each round; each row is the median
over the rounds, and its ratio is to the lab network's (64, 32, 16) median.
"""

import argparse
import statistics
import time

import torch
from torch import nn

from skssl.backbones import small_cnn

WIDTHS = [(64, 32, 16), (64, 32, 128), (64, 64, 128), (32, 64, 128)]


def training_step(widths, side, n_classes):
    torch.manual_seed(0)
    body = small_cnn((1, side, side), widths=widths)
    n_features = body(torch.zeros(1, 1, side, side)).numel()
    net = nn.Sequential(body, nn.Flatten(), nn.Linear(n_features, n_classes)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3, fused=True)

    def step(images, targets):
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(images), targets).backward()
        optimizer.step()

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=28)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per width and round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    images = torch.rand(args.batch_size, 1, args.side, args.side)
    targets = torch.randint(0, 128, (args.batch_size,))
    steps = {widths: training_step(widths, args.side, 128) for widths in WIDTHS}
    for step in steps.values():  # warm-up
        for _ in range(3):
            step(images, targets)
    seconds = {widths: [] for widths in WIDTHS}
    for _ in range(args.rounds):
        for widths, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(images, targets)
            seconds[widths].append((time.perf_counter() - start) / args.steps)
    print(
        f"# {args.side}x{args.side} images, batch {args.batch_size}, {torch.get_num_threads()} threads, "
        f"medians of {args.rounds} interleaved rounds\n"
    )
    print("| widths | images/s | step time against (64, 32, 16) |")
    print("| --- | ---: | ---: |")
    lab = statistics.median(seconds[WIDTHS[0]])
    for widths in WIDTHS:
        median = statistics.median(seconds[widths])
        print(f"| {widths} | {args.batch_size / median:,.0f} | {median / lab:.2f} |")


if __name__ == "__main__":
    main()
