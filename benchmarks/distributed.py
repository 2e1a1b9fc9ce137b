"""Data-parallel pretext training: the loss curve on 1 process against N under torchrun.

    python benchmarks/distributed.py [--nproc 2] [--methods RotNetFeaturizer,SimCLRFeaturizer]

Every run uses the same global batch (``--batch-size`` images per step, split across
the processes), the same seed and the first ``--n-images`` digits, on the CPU with the
gloo backend. It prints each epoch's loss for both runs and their relative difference.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import torch
    torch.set_num_threads(1)
    from sklearn.datasets import load_digits
    import skssl
    cls, out = sys.argv[1], sys.argv[5]
    n_images, batch_size, epochs = (int(value) for value in sys.argv[2:5])
    X = load_digits().data[:n_images]
    start = time.perf_counter()
    featurizer = getattr(skssl, cls)(max_epochs=epochs, batch_size=batch_size, device="cpu", random_state=0).fit(X)
    seconds = time.perf_counter() - start
    if int(os.environ["RANK"]) == 0:
        with open(out, "w") as f:
            json.dump({"losses": [h["loss"] for h in featurizer.history_], "seconds": seconds}, f)
    """
)


def run(folder, cls, nproc, args):
    script = Path(folder) / "fit.py"
    script.write_text(WORKER)
    out = Path(folder) / f"{cls}-{nproc}.json"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            str(script),
            cls,
            str(args.n_images),
            str(args.batch_size),
            str(args.epochs),
            str(out),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    if finished.returncode:
        sys.exit(f"torchrun failed for {cls} on {nproc} processes:\n{finished.stderr[-4000:]}")
    return json.loads(out.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--methods", default="RotNetFeaturizer,SimCLRFeaturizer,MoCoFeaturizer")
    parser.add_argument("--n-images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    print(f"# digits[:{args.n_images}], global batch {args.batch_size}, gloo on the CPU, 1 thread per process\n")
    print(f"| method | epoch | loss, 1 process | loss, {args.nproc} processes | relative difference |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for cls in args.methods.split(","):
            single, multi = run(folder, cls, 1, args), run(folder, cls, args.nproc, args)
            for epoch, (a, b) in enumerate(zip(single["losses"], multi["losses"]), start=1):
                print(f"| {cls} | {epoch} | {a:.4f} | {b:.4f} | {(b - a) / abs(a):+.3f} |", flush=True)


if __name__ == "__main__":
    main()
