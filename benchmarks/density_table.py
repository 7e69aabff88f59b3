"""Held-out log-likelihood of the defaults against classical density models.

For each continuous data set: ``VHPEstimator`` (defaults, or with
``--set`` overrides, or each ``decoder_variance``) against
``GaussianMixture`` (full covariances, the best of a few component counts
by held-out score), ``KernelDensity`` (Gaussian kernel, bandwidth by 3-fold
cross-validation on the training rows) and probabilistic PCA
(``PCA(n_components).score``), with fit times. Data: the continuous sets of
``defaults_suite.py`` plus ``patches``, 20,000 8 × 8 grey patches of
``load_sample_images()`` / 255 (16,000 train, 4,000 held out).

Usage::

    python benchmarks/density_table.py --datasets patches wine --n-components 8
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CONTINUOUS = (
    "patches",
    "digits",
    "pendulum",
    "s_curve",
    "blobs",
    "breast_cancer",
    "wine",
    "diabetes",
)
GMM_COMPONENTS = (1, 2, 5, 10, 20)


def load_patches(n=20000, n_train=16000, seed=0):
    """8 × 8 grey patches of scikit-learn's sample images, /255, train and held out."""
    from sklearn.datasets import load_sample_images
    from sklearn.feature_extraction.image import extract_patches_2d

    images = load_sample_images().images
    per = n // len(images)
    rng = np.random.RandomState(seed)
    rows = []
    for img in images:
        grey = img.mean(axis=2) / 255.0
        rows.append(extract_patches_2d(grey, (8, 8), max_patches=per, random_state=rng))
    X = np.concatenate(rows).reshape(-1, 64)
    X = X[rng.permutation(len(X))]
    return X[:n_train], X[n_train:]


def load(name):
    if name == "patches":
        return load_patches()
    from defaults_suite import load as suite_load

    X_train, X_test, *_ = suite_load(name)
    return X_train, X_test


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def baselines(X_train, X_test, n_components, gmm_components=GMM_COMPONENTS, seed=0):
    """Scores (mean held-out nats per row) and fit seconds of GMM / KDE / PPCA."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity

    out = {}
    gmm = {}
    for k in gmm_components:
        if k >= len(X_train) // 4:
            continue
        m, s = timed(
            lambda k=k: GaussianMixture(k, covariance_type="full", random_state=seed).fit(X_train)
        )
        gmm[k] = (float(m.score(X_test)), s)
    best = max(gmm, key=lambda k: gmm[k][0])
    out["gmm"] = dict(score=gmm[best][0], seconds=gmm[best][1], n_components=best, all=gmm)
    std = float(np.sqrt(np.mean(np.var(X_train, axis=0))))
    grid = {"bandwidth": std * np.logspace(-2, 0, 9)}
    rows = X_train[:4000]  # the bandwidth search on at most 4000 rows
    search, s_cv = timed(lambda: GridSearchCV(KernelDensity(), grid, cv=3).fit(rows))
    kde, s = timed(lambda: KernelDensity(bandwidth=search.best_params_["bandwidth"]).fit(X_train))
    out["kde"] = dict(
        score=float(np.mean(kde.score_samples(X_test))),
        seconds=s + s_cv,
        bandwidth=float(search.best_params_["bandwidth"]),
    )
    d = min(n_components, X_train.shape[1] - 1)
    pca, s = timed(lambda: PCA(d).fit(X_train))
    out["ppca"] = dict(score=float(pca.score(X_test)), seconds=s, n_components=d)
    return out


def vhp(X_train, X_test, params, eval_samples=1000, seed=0, score_rows=1000):
    import torch

    from sklearn_vhp import VHPEstimator

    torch.set_num_threads(1)
    est = VHPEstimator(random_state=seed, device="cpu", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, s = timed(lambda: est.fit(X_train))
    est.set_params(n_eval_samples=eval_samples)
    return dict(
        score=float(np.mean(est.score_samples(X_test[:score_rows]))),
        seconds=s,
        epochs=int(est.n_iter_),
        hidden=list(est.hidden_layer_sizes_),
        beta=float(est.beta_),
        decoder_variance=getattr(est, "decoder_variance_", None),
        noise_variance=est.noise_variance_,
    )


def _value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(CONTINUOUS), choices=CONTINUOUS)
    parser.add_argument("--n-components", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--variances", nargs="*", default=None, help="decoder_variance values")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    params = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    params.setdefault("n_components", args.n_components)
    results = []
    for name in args.datasets:
        X_train, X_test = load(name)
        row = dict(dataset=name, shape=list(X_train.shape))
        if not args.no_baselines:
            row.update(baselines(X_train, X_test, params["n_components"]))
        for v in args.variances or [None]:
            p = dict(params) if v is None else dict(params, decoder_variance=v)
            row[f"vhp[{v or 'default'}]"] = vhp(X_train, X_test, p, args.eval_samples)
        print(json.dumps(row), flush=True)
        results.append(row)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
