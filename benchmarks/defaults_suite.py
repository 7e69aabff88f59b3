"""Defaults suite: ``VHPEstimator(n_components=2, random_state=0)`` on data no one tuned for.

Every data set is fitted with all other parameters at their defaults and
compared, on the same held-out rows, with what a user would try beside it:

* **prior trained**: REWO's phase at the end, the final β and whether a
  ``ConvergenceWarning`` was raised (the prior is trained only in REWO's main
  phase; β = 1 is the ELBO);
* **held-out log-likelihood** per row (``score``, importance-sampled with
  ``--eval-samples`` samples, on at most 1,000 held-out rows): the same
  defaults with ``prior="standard"``, and probabilistic PCA with the same
  latent width (``PCA(n_components=2).score``; for binary data PCA's Gaussian
  density is not comparable and is left out);
* **latent quality**: 5-NN accuracy (classes) or R² (continuous target) from
  the 2-D codes of the training rows to the target of the held-out rows,
  against ``PCA(2)``, ``Isomap(2)`` and UMAP (if ``umap-learn`` is installed;
  its held-out codes come from ``UMAP.transform``);
* **fit time** of the default model;
* **density table** (continuous data): the default model's held-out
  log-likelihood against ``GaussianMixture`` (full covariances, the best of
  1, 2, 5, 10 and 20 components by held-out score), ``KernelDensity``
  (bandwidth by 3-fold cross-validation) and probabilistic PCA, with fit
  times (see ``density_table.py``; ``--no-density`` skips it).

Data sets (``--datasets`` picks some; all ship offline): ``digits``
(``load_digits() / 16``), ``mnist`` (the first 10,000 rows of static
binarized MNIST, scored on 1,000 validation rows; no labels, so no 5-NN
column; needs ``--data-home``), ``pendulum`` (15,000 images, target the
angle as ``(cos θ, sin θ)``, R²), ``s_curve`` (3-D S-curve, target its
position along the curve), ``blobs`` (6 clusters in 50 dimensions),
``breast_cancer``, ``wine`` and ``diabetes`` (tabular, standardised; the
last with a continuous target), ``patches`` (20,000 8 × 8 grey patches of
``load_sample_images()`` / 255, 16,000 for training; no labels). Tabular
and generated sets are standardised with the training rows'
``StandardScaler``; 25 % of the rows are held out.

Usage::

    python benchmarks/defaults_suite.py --n-jobs 2 --threads 1
    python benchmarks/defaults_suite.py --datasets digits wine --set max_iter=50
    python benchmarks/defaults_suite.py --quick     # smoke run, seconds

Each data set runs in its own process (``--n-jobs`` at a time, ``--threads``
torch threads each); the table is printed and saved as ``defaults_suite.md``
(and ``.json``) under ``--out``.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

try:
    import sklearn_vhp  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if str(Path(__file__).resolve().parent) not in sys.path:  # density_table.py beside it
    sys.path.insert(0, str(Path(__file__).resolve().parent))

DATASETS = (
    "digits",
    "mnist",
    "pendulum",
    "s_curve",
    "blobs",
    "breast_cancer",
    "wine",
    "diabetes",
    "patches",
)
DEFAULT_DATA_HOME = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(name, data_home=DEFAULT_DATA_HOME, quick=False):
    """``(X_train, X_test, y_train, y_test, kind)``; ``kind`` is "class", "real" or None."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    scale = True
    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
        X, kind, scale = X / 16.0, "class", False
    elif name == "mnist":
        from sklearn_vhp.datasets import load_binarized_mnist

        n_train, n_test = (500, 100) if quick else (10000, 1000)
        X_train = load_binarized_mnist("train", data_home=data_home)[:n_train]
        X_test = load_binarized_mnist("valid", data_home=data_home)[:n_test]
        return X_train.astype(np.float64), X_test.astype(np.float64), None, None, None
    elif name == "pendulum":
        from sklearn_vhp.datasets import make_pendulum

        X, angle = make_pendulum(1000 if quick else 15000, random_state=0)
        y, kind, scale = np.c_[np.cos(angle), np.sin(angle)], "real", False
    elif name == "s_curve":
        X, y = datasets.make_s_curve(3000, noise=0.05, random_state=0)
        kind = "real"
    elif name == "blobs":
        X, y = datasets.make_blobs(3000, n_features=50, centers=6, cluster_std=4.0, random_state=0)
        kind = "class"
    elif name == "patches":
        from density_table import load_patches

        X_train, X_test = load_patches()
        if quick:
            X_train, X_test = X_train[:300], X_test[:100]
        return X_train, X_test, None, None, None
    elif name == "breast_cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        kind = "class"
    elif name == "wine":
        X, y = datasets.load_wine(return_X_y=True)
        kind = "class"
    elif name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
        kind = "real"
    else:
        raise ValueError(f"unknown data set {name!r}; choose from {DATASETS}")
    if quick:
        X, y = X[:400], y[:400]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    if scale:
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    return X_train, X_test, y_train, y_test, kind


def knn_quality(Z_train, Z_test, y_train, y_test, kind):
    """5-NN accuracy (classes) or R² (continuous) from training codes to held-out targets."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    if kind is None:
        return None
    knn = KNeighborsClassifier(5) if kind == "class" else KNeighborsRegressor(5)
    return float(knn.fit(Z_train, y_train).score(Z_test, y_test))


def run(
    name, params, eval_samples, threads, data_home, quick, seed=0, score_rows=1000, density=True
):
    """One data set: the default model, its standard-prior twin and the baselines."""
    import torch

    torch.set_num_threads(threads)
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.manifold import Isomap

    from sklearn_vhp import VHPEstimator

    X_train, X_test, y_train, y_test, kind = load(name, data_home, quick)
    X_score = X_test[:score_rows]  # log-likelihoods on at most this many held-out rows
    row = dict(dataset=name, n_train=len(X_train), n_features=X_train.shape[1], kind=kind)

    def fit(**extra):
        est = VHPEstimator(n_components=2, random_state=seed, device="cpu", **{**params, **extra})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            est.fit(X_train)
            seconds = time.perf_counter() - start
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        est.set_params(n_eval_samples=eval_samples)
        return est, seconds, converged, est.score(X_score)

    est, seconds, converged, score = fit()
    schedule = est.schedule_
    row.update(
        fit_seconds=seconds,
        epochs=int(est.n_iter_),
        iterations=len(est.history_["loss"]),
        phase=str(schedule.phase),
        beta=float(est.beta_),
        converged=converged,
        kappa=float(est.kappa_),
        noise_variance=getattr(est, "noise_variance_", None),
        score=score,
        vhp_knn=knn_quality(est.transform(X_train), est.transform(X_test), y_train, y_test, kind),
    )
    _, _, _, row["standard_score"] = fit(prior="standard")
    binary = bool(np.all((X_train == 0) | (X_train == 1)))
    pca = PCA(n_components=2, random_state=0).fit(X_train)
    row["pca_score"] = None if binary else float(pca.score(X_score))
    if density and not binary:
        from density_table import baselines

        components = (1, 2) if quick else (1, 2, 5, 10, 20)
        row["density"] = baselines(X_train, X_score, 2, gmm_components=components)
    row["pca_knn"] = knn_quality(
        pca.transform(X_train), pca.transform(X_test), y_train, y_test, kind
    )
    if kind is not None:
        warnings.simplefilter("ignore")  # the baselines' own warnings (graph, spectral init)
        n_iso = min(len(X_train), 4000)
        iso = Isomap(n_components=2, n_neighbors=10).fit(X_train[:n_iso])
        row["isomap_knn"] = knn_quality(
            iso.transform(X_train[:n_iso]), iso.transform(X_test), y_train[:n_iso], y_test, kind
        )
        try:
            if quick:  # numba's compilation alone takes longer than the smoke run
                raise ImportError
            import umap
        except ImportError:
            row["umap_knn"] = None
        else:
            reducer = umap.UMAP(n_components=2, random_state=0).fit(X_train)
            row["umap_knn"] = knn_quality(
                reducer.embedding_, reducer.transform(X_test), y_train, y_test, kind
            )
    return row


def _fmt(value, spec="{:.3f}"):
    return "—" if value is None else spec.format(value)


def table(rows):
    lines = [
        "| data set | n × D | phase, β | warning | κ | log-lik. VHP | standard prior | PCA "
        "| 5-NN VHP | PCA(2) | Isomap(2) | UMAP | epochs | fit [s] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        metric = {"class": "acc", "real": "R²", None: ""}[r["kind"]]
        lines.append(
            f"| {r['dataset']} | {r['n_train']} × {r['n_features']} | {r['phase']}, "
            f"{r['beta']:.3g} | {'—' if r['converged'] else 'ConvergenceWarning'} | "
            f"{r['kappa']:.3g} | {_fmt(r['score'], '{:.2f}')} | "
            f"{_fmt(r['standard_score'], '{:.2f}')} | {_fmt(r['pca_score'], '{:.2f}')} | "
            f"{_fmt(r['vhp_knn'])} {metric} | {_fmt(r['pca_knn'])} | "
            f"{_fmt(r.get('isomap_knn'))} | {_fmt(r.get('umap_knn'))} | {r['epochs']} | "
            f"{r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def density_table(rows):
    """Held-out log-likelihood of the defaults against GMM / KDE / PPCA, with fit times."""
    lines = [
        "| data set | VHP defaults | fit [s] | GMM (best k) | fit [s] | KDE (bandwidth) "
        "| fit [s] | PPCA(2) | best of GMM/KDE/PPCA | VHP ≥ best |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r.get("density")
        if d is None:
            continue
        best = max(d["gmm"]["score"], d["kde"]["score"], d["ppca"]["score"])
        lines.append(
            f"| {r['dataset']} | {r['score']:.2f} | {r['fit_seconds']:.0f} | "
            f"{d['gmm']['score']:.2f} ({d['gmm']['n_components']}) | "
            f"{d['gmm']['seconds']:.1f} | {d['kde']['score']:.2f} "
            f"({d['kde']['bandwidth']:.3g}) | {d['kde']['seconds']:.1f} | "
            f"{d['ppca']['score']:.2f} | {best:.2f} | {'yes' if r['score'] >= best else 'no'} |"
        )
    return "\n".join(lines)


def verdict(r):
    """The issue's criteria for one row: list of failed checks (empty: all hold)."""
    failed = []
    if r["phase"] != "main" or r["beta"] < 0.999 or not r["converged"]:
        failed.append("prior not trained to β = 1")
    if r["score"] < r["standard_score"] - 0.5:
        failed.append("log-lik. below the standard prior's")
    if r["pca_score"] is not None and r["score"] < r["pca_score"]:
        failed.append("log-lik. below PCA's")
    if r["vhp_knn"] is not None and r["vhp_knn"] < r["pca_knn"]:
        failed.append("5-NN below PCA(2)'s")
    return failed


def _parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-home", default=str(DEFAULT_DATA_HOME))
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="override a default (trials)"
    )
    parser.add_argument("--out", default=".")
    parser.add_argument("--random-state", type=int, default=0, help="the models' seed")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-density", action="store_true", help="skip the density table")
    args = parser.parse_args(argv)
    params = {k: _parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.quick:
        params = {"hidden_layer_sizes": (16,), "max_iter": 2, **params}
        args.eval_samples = min(args.eval_samples, 20)
    jobs = [
        (
            name,
            params,
            args.eval_samples,
            args.threads,
            args.data_home,
            args.quick,
            args.random_state,
            1000,
            not args.no_density,
        )
        for name in args.datasets
    ]
    start = time.perf_counter()
    if args.n_jobs > 1:
        with ProcessPoolExecutor(args.n_jobs) as pool:
            rows = []
            for row in pool.map(run, *zip(*jobs)):
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)  # progress
    else:
        rows = [run(*job) for job in jobs]
    import torch

    header = (
        f"# Defaults suite · {datetime.date.today()} · "
        f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
        f"torch {torch.__version__} · {args.threads} torch thread(s) per data set, "
        f"{args.n_jobs} at a time · {time.perf_counter() - start:.0f} s"
    )
    overrides = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "none"
    text = "\n".join(
        [
            header,
            "",
            "Command: `python benchmarks/defaults_suite.py "
            + " ".join(sys.argv[1:] if argv is None else argv)
            + "`",
            "",
            f"`VHPEstimator(n_components=2, random_state={args.random_state})`, "
            f"overrides: {overrides}; "
            f"log-likelihoods in nats per held-out row ({args.eval_samples} importance "
            "samples); 5-NN: accuracy (acc) or R² from the 2-D codes.",
            "",
            table(rows),
            "",
            "Density (nats per held-out row; fit times on the same machine, "
            f"{args.threads} thread(s)):",
            "",
            density_table(rows),
            "",
        ]
        + [
            f"* {r['dataset']}: "
            + ("all criteria hold" if not verdict(r) else "; ".join(verdict(r)))
            for r in rows
        ]
    )
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "defaults_suite.md").write_text(text + "\n", encoding="utf-8")
    (out / "defaults_suite.json").write_text(
        json.dumps({"params": params, "rows": rows}, indent=1, default=str), encoding="utf-8"
    )
    return rows


if __name__ == "__main__":
    main()
