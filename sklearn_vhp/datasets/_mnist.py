"""Loader for the static binarization of MNIST (Larochelle & Murray, 2011)."""

import os
from pathlib import Path

import numpy as np

from .._compat import StrOptions, validate_params

_SPLITS = ("train", "valid", "test")


def _default_data_homes():
    """Where the loaders look without ``data_home``: scikit-learn's convention.

    ``sklearn.datasets.get_data_home()`` (``$SCIKIT_LEARN_DATA``, else
    ``~/scikit_learn_data``) / ``sklearn_vhp``, the folder the ``fetch_*``
    functions of this package cache into. Nothing relative to the working
    directory: a library default must not depend on where Python was started.
    """
    from sklearn.datasets import get_data_home

    return [Path(get_data_home()) / "sklearn_vhp"]


@validate_params(
    {"split": [StrOptions(set(_SPLITS))], "data_home": [str, os.PathLike, None]},
    prefer_skip_nested_validation=True,
)
def load_binarized_mnist(split="train", data_home=None):
    """Load the static binarized MNIST of Larochelle & Murray (2011).

    This is the "static MNIST" benchmark of the paper's Table 2 (and of the
    VampPrior and IWAE papers). Nothing is downloaded: the files must be on
    disk, either as ``binarized_mnist_{split}.npz`` holding an array ``X``
    packed with ``np.packbits(axis=1)``, or as the classic
    ``binarized_mnist_{split}.amat`` text files.

    Parameters
    ----------
    split : {"train", "valid", "test"}, default="train"
        Which split: 50,000, 10,000 and 10,000 rows.
    data_home : str or path-like, default=None
        Folder holding the files. By default the ``sklearn_vhp`` folder of
        scikit-learn's data home, :func:`sklearn.datasets.get_data_home`
        (``$SCIKIT_LEARN_DATA``, else ``~/scikit_learn_data``).

    Returns
    -------
    X : ndarray of shape (n_samples, 784), dtype float64
        Pixels in {0, 1}, row-major 28 x 28 images.

    Raises
    ------
    FileNotFoundError
        When no file for ``split`` is found; the message names the paths
        that were searched.
    """
    homes = [Path(data_home)] if data_home is not None else _default_data_homes()
    tried = []
    for home in homes:
        for ext in ("npz", "amat"):
            path = home / f"binarized_mnist_{split}.{ext}"
            tried.append(str(path))
            if path.is_file():
                if ext == "npz":
                    with np.load(path) as f:
                        packed = f["X"]
                    X = np.unpackbits(packed, axis=1)[:, :784]
                else:
                    X = np.loadtxt(path, dtype=np.uint8)
                if X.ndim != 2 or X.shape[1] != 784:
                    raise ValueError(f"{path} holds shape {X.shape}, expected (n, 784).")
                return X.astype(np.float64, order="C")  # unpackbits gives Fortran order
    raise FileNotFoundError(
        f"Static binarized MNIST ({split!r} split) not found. Looked for: "
        + ", ".join(tried)
        + ". Place binarized_mnist_{train,valid,test}.npz (packbits) or .amat "
        "files in one of these folders or pass data_home=."
    )
