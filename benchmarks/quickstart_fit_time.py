"""Wall time of the quick start's pendulum fit (docs/quickstart.rst).

``VHPEstimator(n_components=2, random_state=0).fit(X[:12000])`` on
``make_pendulum(15000, random_state=0)``, with ``--threads`` torch threads.
Prints the fit time, the total time with imports and data, and the load
average at the end (a busy machine slows the fit: report it with the time).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/quickstart_fit_time.py --threads 2
"""

import argparse
import os
import time

T0 = time.perf_counter()

import torch

from sklearn_vhp import VHPEstimator
from sklearn_vhp.datasets import make_pendulum


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, _ = make_pendulum(15000, random_state=0)
    start = time.perf_counter()
    vhp = VHPEstimator(n_components=2, random_state=0).fit(X[:12000])
    end = time.perf_counter()
    print(
        f"torch threads {torch.get_num_threads()}: fit {end - start:.0f} s "
        f"({vhp.n_iter_} epochs), with imports and data {end - T0:.0f} s; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
