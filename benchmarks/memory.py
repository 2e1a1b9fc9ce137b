"""Peak memory of ``transform`` and ``fit`` streaming 200,000 MNIST-sized rows from a ``np.memmap``.

    python benchmarks/memory.py [--rows 200000]

The rows (uint8, 784 columns: 157 MB) live in a file-backed memmap. Peak resident
memory (``ru_maxrss``) is read in a fresh process before and after each step:

- ``transform``: a featurizer fitted on 2,000 rows transforms all; the growth should
  be about the output array (rows x features x 4 bytes) plus one batch, not a float
  copy of the input;
- ``fit``: one epoch of a denoising autoencoder on all rows read from the memmap,
  against the same fit on the rows loaded into memory first (``np.asarray``), both
  after a warm-up fit that pays torch's one-off start-up allocations.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FIT_CHILD = """
import json, resource, sys, time
import numpy as np
from skssl import DenoisingAEFeaturizer
path, rows, streamed = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "memmap"
X = np.memmap(path, dtype=np.uint8, mode="r", shape=(rows, 784))
# torch's one-off start-up allocations (~300 MB on the CPU) are not the data's
DenoisingAEFeaturizer(max_epochs=1, batch_size=256, device="cpu").fit(np.zeros((512, 784), np.uint8))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
X = X if streamed else np.asarray(X).copy()
DenoisingAEFeaturizer(max_epochs=1, batch_size=256, random_state=0, device="cpu").fit(X)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_mb": before / 1024, "after_mb": after / 1024, "seconds": seconds}))
"""

CHILD = """
import json, resource, sys, time
import numpy as np
from skssl import RotNetFeaturizer
path, rows = sys.argv[1], int(sys.argv[2])
X = np.memmap(path, dtype=np.uint8, mode="r", shape=(rows, 784))
featurizer = RotNetFeaturizer(max_epochs=1, random_state=0, device="cpu").fit(np.asarray(X[:2000]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
features = featurizer.transform(X)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_mb": before / 1024, "after_mb": after / 1024, "seconds": seconds,
                  "output_mb": features.nbytes / 2**20, "shape": list(features.shape)}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.u8"
        data = np.memmap(path, dtype=np.uint8, mode="w+", shape=(args.rows, 784))
        rng = np.random.default_rng(0)
        for start in range(0, args.rows, 50_000):
            stop = min(start + 50_000, args.rows)
            data[start:stop] = rng.integers(0, 256, size=(stop - start, 784), dtype=np.uint8)
        data.flush()
        del data

        def child(code, *extra):
            output = subprocess.run(
                [sys.executable, "-c", code, str(path), str(args.rows), *extra],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            return json.loads(output.strip().splitlines()[-1])

        result = child(CHILD)
        fits = {how: child(FIT_CHILD, how) for how in ("memmap", "in-memory")}
    input_mb = args.rows * 784 / 2**20
    growth = result["after_mb"] - result["before_mb"]
    print(
        "| rows | input (uint8 memmap) | output float32 | peak RSS before | peak RSS after | growth "
        "| growth / output | transform rows/s |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.rows:,} | {input_mb:,.0f} MB | {result['output_mb']:,.0f} MB | {result['before_mb']:,.0f} MB | "
        f"{result['after_mb']:,.0f} MB | {growth:,.0f} MB | {growth / result['output_mb']:.2f} | "
        f"{args.rows / result['seconds']:,.0f} |"
    )
    print("\n| fit, 1 epoch of DenoisingAEFeaturizer on | peak RSS before | peak RSS after | growth | rows/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for how, fit in fits.items():
        print(
            f"| {args.rows:,} rows, {how} | {fit['before_mb']:,.0f} MB | {fit['after_mb']:,.0f} MB | "
            f"{fit['after_mb'] - fit['before_mb']:,.0f} MB | {args.rows / fit['seconds']:,.0f} |"
        )


if __name__ == "__main__":
    main()
