"""A fit on a busy machine: alone, beside another skssl fit, beside a BLAS loop; and a grid search.

    python benchmarks/contention.py --mnist ../shared/data/mnist_train.npz            # 3 rounds
    python benchmarks/contention.py --methods rotnet --rounds 5 --skip-grid
    python benchmarks/contention.py --mnist ../shared/data/mnist_train.npz --threads 2,auto --quiet-only

Every measured fit runs in a process of its own that imports torch and numpy before
skssl, as a user's script does, and times ``fit`` alone (not the imports). Each round
runs, interleaved: the fit alone; the competitor alone (its rate, in units per second);
then both together, the competitor started first. The table gives medians over the
rounds of the fit's slowdown (time beside / time alone) and of the competitor's
(rate alone / rate beside): winning by starving the other process does not count.

Competitors: another skssl fit of the same method (unit: an epoch), and NumPy matrix
products on all cores (unit: a 512x512 float64 product).

The grid: ``GridSearchCV`` over 4 candidates of the featurizer (learning rate x batch
size) with 2-fold CV, ``n_jobs=1`` against ``n_jobs=2``, next to the 2-thread speedup
``s`` of one fit (its time on 1 thread / on 2); with 2 workers on 2 cores the ideal grid
speedup is ``2 / s``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.abspath(__file__)


def _data(mnist, n_images):
    from skssl.datasets import load_digits_images, load_mnist

    if mnist:
        X, y = load_mnist(mnist)
    else:
        X, y = load_digits_images()
    return X[:n_images], y[:n_images]


def _estimator(method, epochs, n_threads="auto", **settings):
    from skssl.registry import METHODS

    n_threads = n_threads if n_threads == "auto" else int(n_threads)
    return METHODS[method].estimator(max_epochs=epochs, random_state=0, n_threads=n_threads, **settings)


def worker_fit(args):
    """One timed fit; prints its seconds as JSON."""
    X, _ = _data(args.mnist, args.n_images)
    estimator = _estimator(args.method, args.epochs, args.n_threads)
    start = time.perf_counter()
    estimator.fit(X)
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def worker_compete(args):
    """Work forever, one timestamp line per unit (an epoch of a fit, or a BLAS product)."""
    if args.competitor == "blas":
        import numpy as np

        a = np.random.default_rng(0).random((512, 512))
        while True:
            a = a @ a
            a /= np.abs(a).max()
            print(time.time(), flush=True)
    X, _ = _data(args.mnist, args.n_images)
    estimator = _estimator(args.method, 1, args.n_threads, warm_start=True)  # each fit: one more epoch
    while True:
        estimator.fit(X)
        print(time.time(), flush=True)


def worker_grid(args):
    """One timed grid search; prints its seconds as JSON."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X, y = _data(args.mnist, args.n_images)
    pipeline = make_pipeline(_estimator(args.method, args.epochs, args.n_threads), LogisticRegression(max_iter=200))
    prefix = pipeline.steps[0][0]
    grid = {f"{prefix}__learning_rate": [1e-3, 3e-3], f"{prefix}__batch_size": [64, 128]}
    search = GridSearchCV(pipeline, grid, cv=2, n_jobs=args.n_jobs)
    start = time.perf_counter()
    search.fit(X, y)
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def _command(args, role, **extra):
    command = [sys.executable, HERE, "--worker", role, "--method", args.method, "--n-images", str(args.n_images)]
    command += ["--epochs", str(args.epochs), "--n-threads", args.n_threads]
    command += ["--mnist", args.mnist] if args.mnist else []
    for name, value in extra.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return command


def _timed(command, environment=None):
    """Run a worker that prints one JSON line; its seconds."""
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout
    return json.loads(output.strip().splitlines()[-1])["seconds"]


class Competitor:
    """A competing worker process; a thread records when each of its units ended."""

    def __init__(self, command):
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.process.stdout.readline()  # its first unit done: imported and warmed up
        self.stamps = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.stamps.append(float(line))

    def rate(self, start, end):
        """Units per second that ended within ``[start, end]``."""
        inside = [stamp for stamp in list(self.stamps) if start <= stamp <= end]
        if len(inside) < 2:
            return float("nan")
        return (len(inside) - 1) / (inside[-1] - inside[0])

    def stop(self):
        self.process.kill()
        self.process.wait()


def competitor_alone(command, seconds, units=5):
    """Its rate alone, over ``seconds`` and at least ``units`` units."""
    competitor = Competitor(command)
    start = time.time()
    time.sleep(seconds)
    while len([stamp for stamp in competitor.stamps if stamp >= start]) < units and time.time() - start < 120:
        time.sleep(0.5)
    rate = competitor.rate(start, time.time())
    competitor.stop()
    return rate


def beside(fit_command, competitor_command):
    competitor = Competitor(competitor_command)
    start = time.time()
    seconds = _timed(fit_command)
    rate = competitor.rate(start, time.time())
    competitor.stop()
    return seconds, rate


def contention_rows(args):
    """``{(n_threads, competitor): [(alone s, beside s, rate alone, rate beside), ...]}``,
    the settings interleaved within each round."""
    rows = {}
    for round_ in range(args.rounds):
        for n_threads in args.threads.split(","):
            args.n_threads = n_threads
            alone = _timed(_command(args, "fit"))
            for name in ("skssl", "blas"):
                competitor_command = _command(args, "compete", competitor=name)
                rate_alone = competitor_alone(competitor_command, max(alone, 5.0))
                seconds, rate_beside = beside(_command(args, "fit"), competitor_command)
                rows.setdefault((n_threads, name), []).append((alone, seconds, rate_alone, rate_beside))
                print(
                    f"  round {round_ + 1} {args.method} n_threads={n_threads} beside {name}: fit {alone:.1f}s "
                    f"alone, {seconds:.1f}s beside; competitor {rate_alone:.2f}/s alone, {rate_beside:.2f}/s "
                    f"beside; load {os.getloadavg()[0]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    return rows


def quiet_rows(args):
    """On a quiet machine, in this process after a warm-up: ``{n_threads: [seconds, ...]}``
    of alternating (ABBA) fits, so that neither setting always runs first."""
    X, _ = _data(args.mnist, args.n_images)
    _estimator(args.method, 1).fit(X)
    settings = args.threads.split(",")
    times = {n_threads: [] for n_threads in settings}
    for round_ in range(2 * args.rounds):
        for n_threads in settings if round_ % 2 == 0 else settings[::-1]:
            start = time.perf_counter()
            _estimator(args.method, args.epochs, n_threads).fit(X)
            times[n_threads].append(time.perf_counter() - start)
    return times


def grid_rows(args):
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    rounds = []
    for _ in range(args.rounds):
        fit_two = _timed(_command(args, "fit"))
        fit_one = _timed(_command(args, "fit"), one_thread)
        grid_one = _timed(_command(args, "grid", n_jobs=1))
        grid_two = _timed(_command(args, "grid", n_jobs=2))
        rounds.append((fit_one / fit_two, grid_one / grid_two, grid_one, grid_two))
        print(f"  round: s={rounds[-1][0]:.2f}, grid {grid_one:.1f}s / {grid_two:.1f}s", file=sys.stderr, flush=True)
    return rounds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", help="MNIST .npz or idx files (default: sklearn's digits)")
    parser.add_argument("--methods", default="rotnet,simclr")
    parser.add_argument("--n-images", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument(
        "--quiet-only",
        action="store_true",
        help="only compare the --threads settings on a quiet machine, in one process (ABBA order)",
    )
    parser.add_argument(
        "--threads",
        default="auto",
        help="comma-separated n_threads settings to compare, interleaved (e.g. auto,2: 2 is fixed threads, "
        "as before n_threads existed)",
    )
    parser.add_argument("--worker", choices=("fit", "compete", "grid"), help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--competitor", choices=("skssl", "blas"), help=argparse.SUPPRESS)
    parser.add_argument("--n-jobs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--n-threads", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import numpy  # noqa: F401  (a user's script imports them first)
        import torch  # noqa: F401

        {"fit": worker_fit, "compete": worker_compete, "grid": worker_grid}[args.worker](args)
        return
    print(
        f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; {args.n_images} images, "
        f"{args.epochs} epochs, {args.rounds} rounds, medians\n"
    )
    median = statistics.median
    if args.quiet_only:
        first, *others = args.threads.split(",")
        print(f"| method | n_threads | median fit s | median ratio to n_threads={first} |")
        print("| --- | --- | ---: | ---: |")
        for method in args.methods.split(","):
            args.method = method
            times = quiet_rows(args)
            for n_threads, seconds in times.items():
                ratio = median(a / b for a, b in zip(seconds, times[first]))
                print(f"| {method} | {n_threads} | {median(seconds):.2f} | {ratio:.3f} |", flush=True)
        return
    print("| method | n_threads | beside | fit alone s | fit beside s | fit slowdown | competitor slowdown |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for method in args.methods.split(","):
        args.method = method
        for (n_threads, name), rounds in contention_rows(args).items():
            print(
                f"| {method} | {n_threads} | {'another skssl fit' if name == 'skssl' else 'NumPy BLAS loop'} "
                f"| {median(r[0] for r in rounds):.1f} | {median(r[1] for r in rounds):.1f} "
                f"| {median(r[1] / r[0] for r in rounds):.2f}x | {median(r[2] / r[3] for r in rounds):.2f}x |",
                flush=True,
            )
    if args.skip_grid:
        return
    args.n_threads = args.threads.split(",")[0]
    print("\n| method | 2-thread speedup s | ideal grid speedup 2/s | grid n_jobs=1 s | n_jobs=2 s | speedup |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for method in args.methods.split(","):
        args.method = method
        rounds = grid_rows(args)
        s = median(r[0] for r in rounds)
        print(
            f"| {method} | {s:.2f} | {2 / s:.2f} | {median(r[2] for r in rounds):.1f} "
            f"| {median(r[3] for r in rounds):.1f} | {median(r[1] for r in rounds):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
