"""MNIST and Fashion-MNIST in grey levels, through :func:`sklearn.datasets.fetch_openml`."""

import os
from pathlib import Path

import numpy as np
from sklearn.datasets import fetch_openml, get_data_home
from sklearn.utils import Bunch

from .._compat import StrOptions, validate_params

#: OpenML name, rows of the training split (the rest is the test split).
_DATASETS = {
    "mnist": ("mnist_784", 60000),
    "fashion_mnist": ("Fashion-MNIST", 60000),
}

_DESCR = {
    "mnist": (
        "MNIST handwritten digits (LeCun et al., 1998), 28 x 28 grey levels scaled "
        "to [0, 1], from OpenML 'mnist_784'. Binarise each epoch anew with "
        "DynamicBinarizer for the 'dynamic MNIST' benchmark."
    ),
    "fashion_mnist": (
        "Fashion-MNIST (Xiao et al., 2017), 28 x 28 grey-level images of clothing "
        "scaled to [0, 1], from OpenML 'Fashion-MNIST'."
    ),
}


def _cache_path(key, data_home):
    return Path(get_data_home(data_home)) / "sklearn_vhp" / f"{key}.npz"


def _fetch(key, subset, data_home, download_if_missing, return_X_y):
    name, n_train = _DATASETS[key]
    path = _cache_path(key, data_home)
    if not path.is_file():
        if not download_if_missing:
            raise FileNotFoundError(
                f"{name} is not in the local cache {path} and download_if_missing=False. "
                "Call once with download_if_missing=True (needs the network) or pass "
                "the data_home that holds the cache."
            )
        X, y = fetch_openml(name, version=1, data_home=data_home, return_X_y=True, as_frame=False)
        pixels = np.rint(np.asarray(X, dtype=np.float64)).clip(0, 255).astype(np.uint8)
        labels = np.asarray(y).astype(np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so concurrent readers never see a partial file.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, pixels=pixels, labels=labels)
        os.replace(tmp, path)
    with np.load(path) as f:
        pixels, labels = f["pixels"], f["labels"]
    rows = {"train": slice(0, n_train), "test": slice(n_train, None), "all": slice(None)}[subset]
    X = pixels[rows].astype(np.float64) / 255.0
    y = labels[rows]
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        images=X.reshape(-1, 28, 28),
        DESCR=_DESCR[key],
        filename=str(path),
    )


_PARAMS = {
    "subset": [StrOptions({"train", "test", "all"})],
    "data_home": [str, os.PathLike, None],
    "download_if_missing": ["boolean"],
    "return_X_y": ["boolean"],
}

_DOC = """Load {title} as grey levels in [0, 1] (downloaded from OpenML).

    The first call downloads OpenML's ``{openml}`` with
    :func:`sklearn.datasets.fetch_openml` and stores the pixels as a
    compressed ``sklearn_vhp/{key}.npz`` under ``data_home``; later calls
    read that file and need no network.

    Parameters
    ----------
    subset : {{"train", "test", "all"}}, default="train"
        The standard split: the first 60,000 images (``"train"``), the last
        10,000 (``"test"``) or all 70,000. Select models on a validation
        part of the training images (e.g. their last 10,000), not on the test
        split.
    data_home : str or path-like, default=None
        Cache folder, as in :func:`sklearn.datasets.get_data_home` (by
        default ``~/scikit_learn_data`` or ``$SCIKIT_LEARN_DATA``).
    download_if_missing : bool, default=True
        Download when the cache is absent; with ``False`` a
        :class:`FileNotFoundError` is raised instead.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data``: ndarray of shape (n_samples, 784), float64 in [0, 1],
        row-major 28 x 28 images; ``target``: ndarray of shape
        (n_samples,), int64 labels 0-9; ``images``: ``data`` as
        (n_samples, 28, 28); ``DESCR``; ``filename``: the cache file.
    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        When the cache is absent and ``download_if_missing=False``; the
        message names the expected path.

    See Also
    --------
    DynamicBinarizer : Draws binary images from these grey levels.
    """


@validate_params(_PARAMS, prefer_skip_nested_validation=True)
def fetch_dynamic_mnist(
    subset="train", *, data_home=None, download_if_missing=True, return_X_y=False
):
    return _fetch("mnist", subset, data_home, download_if_missing, return_X_y)


@validate_params(_PARAMS, prefer_skip_nested_validation=True)
def fetch_fashion_mnist(
    subset="train", *, data_home=None, download_if_missing=True, return_X_y=False
):
    return _fetch("fashion_mnist", subset, data_home, download_if_missing, return_X_y)


fetch_dynamic_mnist.__doc__ = (
    _DOC.format(title="MNIST", openml="mnist_784", key="mnist")
    + """
    Examples
    --------
    Dynamic binarisation draws new binary images from the grey levels each
    time they are used::

        from sklearn_vhp.datasets import DynamicBinarizer, fetch_dynamic_mnist

        X, y = fetch_dynamic_mnist(return_X_y=True)
        X_bin = DynamicBinarizer(random_state=0).fit_transform(X)
    """
)
fetch_fashion_mnist.__doc__ = _DOC.format(
    title="Fashion-MNIST", openml="Fashion-MNIST", key="fashion_mnist"
)
