"""Import cost of ``sklearn_vhp`` on top of torch and scikit-learn.

Runs 5 fresh interpreters; each imports torch and scikit-learn first, then
``sklearn_vhp``, timing both steps with ``time.perf_counter``. The second
step is what the package adds (torch and scikit-learn are already loaded, as
they are in any session that uses it). Prints the medians and whether numba /
pynndescent were loaded (they must not be: the interpolator imports them
lazily).

Comparing two separate sets of processes (with and without the package)
measures the same thing but is dominated by process-to-process noise (a
2-second torch import varies by ±150 ms on a 2-core machine), so the
in-process increment is the reported figure.

    python benchmarks/import_time.py
"""

import statistics
import subprocess
import sys

SNIPPET = """
import sys, time
t0 = time.perf_counter()
import torch, sklearn, sklearn.base, sklearn.utils.validation
t1 = time.perf_counter()
import sklearn_vhp
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, 'numba' in sys.modules, 'pynndescent' in sys.modules)
"""


def run(repeats):
    base, ours, loaded = [], [], (False, False)
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", SNIPPET], capture_output=True, text=True, check=True
        ).stdout.split()
        base.append(float(out[0]))
        ours.append(float(out[1]))
        loaded = (loaded[0] or out[2] == "True", loaded[1] or out[3] == "True")
    return base, ours, loaded


def main(repeats=5):
    base, ours, (numba, pynnd) = run(repeats)
    b, o = statistics.median(base), statistics.median(ours)
    print(f"# import time, median of {repeats} fresh processes")
    print()
    print("| import | median (ms) |")
    print("|---|---|")
    print(f"| torch + scikit-learn | {1e3 * b:.0f} |")
    print(f"| **sklearn_vhp on top** | **{1e3 * o:.0f}** (target ≤ 300) |")
    print(f"| ratio to torch + scikit-learn | {o / b:.3f} |")
    print(f"\nnumba loaded: {numba}; pynndescent loaded: {pynnd}")
    return o, numba, pynnd


if __name__ == "__main__":
    main()
