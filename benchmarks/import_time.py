"""Import cost of ``sklearn_vhp`` on top of torch and scikit-learn.

Runs 5 fresh interpreters for each of: ``import torch, sklearn`` (baseline)
and ``import torch, sklearn, sklearn_vhp``; prints the medians, the
difference, and whether numba / pynndescent were loaded.

    python benchmarks/import_time.py
"""

import statistics
import subprocess
import sys

BASE = "import torch, sklearn, sklearn.base, sklearn.utils.validation"
SNIPPET = """
import sys, time
t = time.perf_counter()
{stmt}
dt = time.perf_counter() - t
print(dt, 'numba' in sys.modules, 'pynndescent' in sys.modules)
"""


def run(stmt, repeats):
    times, flags = [], None
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", SNIPPET.format(stmt=stmt)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        times.append(float(out[0]))
        flags = (out[1] == "True", out[2] == "True")
    return times, flags


def main(repeats=5):
    base, _ = run(BASE, repeats)
    ours, (numba, pynnd) = run(BASE + "; import sklearn_vhp", repeats)
    b, o = statistics.median(base), statistics.median(ours)
    print(f"# import time, median of {repeats} fresh processes")
    print()
    print("| import | median (ms) |")
    print("|---|---|")
    print(f"| torch + scikit-learn | {1e3 * b:.0f} |")
    print(f"| torch + scikit-learn + sklearn_vhp | {1e3 * o:.0f} |")
    print(f"| **sklearn_vhp on top** | **{1e3 * (o - b):.0f}** (target ≤ 300) |")
    print(f"\nnumba loaded: {numba}; pynndescent loaded: {pynnd}")
    return o - b, numba, pynnd


if __name__ == "__main__":
    main()
