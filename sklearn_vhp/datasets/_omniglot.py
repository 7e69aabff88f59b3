"""Loader for Omniglot as used by the IWAE and VampPrior papers (``chardata.mat``)."""

import os
from pathlib import Path

import numpy as np

from .._compat import StrOptions, validate_params
from ._mnist import _default_data_homes

OMNIGLOT_FILE = "chardata.mat"
_KEYS = {"train": "data", "test": "testdata"}


def _to_images(data):
    """IWAE layout: stored column-major per image, returned row-major.

    The file holds one image per column (784 rows); each column is a 28 x 28
    image flattened in Fortran (column-major) order. The IWAE code reads it as
    ``data.T.reshape((-1, 28, 28)).reshape((-1, 784), order="F")``; this is the
    same transform.
    """
    data = np.asarray(data, dtype=np.float64).T
    if data.ndim != 2 or data.shape[1] != 784:
        raise ValueError(f"expected 784 pixels per image, got an array of shape {data.shape}.")
    return data.reshape((-1, 28, 28)).reshape((-1, 784), order="F")


@validate_params(
    {"split": [StrOptions(set(_KEYS))], "data_home": [str, os.PathLike, None]},
    prefer_skip_nested_validation=True,
)
def load_omniglot(split="train", data_home=None):
    """Load Omniglot (28 x 28) from the standard ``chardata.mat`` file.

    This is the Omniglot of the IWAE paper (Burda et al., 2016) and the
    VampPrior and VHP papers: 24,345 training and 8,070 test images of
    handwritten characters, grey levels in [0, 1] (binarise them with
    :class:`DynamicBinarizer`). Nothing is downloaded: ``chardata.mat``
    (from the IWAE repository, ``datasets/OMNIGLOT/chardata.mat``) must be on
    disk.

    Parameters
    ----------
    split : {"train", "test"}, default="train"
        ``"train"`` reads the file's ``data``, ``"test"`` its ``testdata``.
    data_home : str or path-like, default=None
        Folder holding ``chardata.mat``. By default the ``sklearn_vhp`` folder
        of scikit-learn's data home, :func:`sklearn.datasets.get_data_home`
        (``$SCIKIT_LEARN_DATA``, else ``~/scikit_learn_data``).

    Returns
    -------
    X : ndarray of shape (n_samples, 784), dtype float64
        Row-major 28 x 28 images with values in [0, 1].

    Raises
    ------
    FileNotFoundError
        When ``chardata.mat`` is not found; the message names the paths that
        were searched.
    """
    from scipy.io import loadmat

    homes = [Path(data_home)] if data_home is not None else _default_data_homes()
    tried = []
    for home in homes:
        path = home / OMNIGLOT_FILE
        tried.append(str(path))
        if path.is_file():
            mat = loadmat(path, variable_names=[_KEYS[split]])
            if _KEYS[split] not in mat:
                raise ValueError(f"{path} has no variable {_KEYS[split]!r}.")
            return _to_images(mat[_KEYS[split]])
    raise FileNotFoundError(
        f"Omniglot file {OMNIGLOT_FILE} not found. Looked for: "
        + ", ".join(tried)
        + ". Download chardata.mat (IWAE repository, datasets/OMNIGLOT/) into one "
        "of these folders or pass data_home=."
    )
