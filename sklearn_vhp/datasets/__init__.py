"""Datasets: the pendulum and chairs of the paper and loaders for the MNIST family and Omniglot."""

from ._binarize import DynamicBinarizer
from ._chairs import make_chairs
from ._mnist import load_binarized_mnist
from ._omniglot import load_omniglot
from ._openml import fetch_dynamic_mnist, fetch_fashion_mnist
from ._pendulum import make_pendulum

__all__ = [
    "DynamicBinarizer",
    "fetch_dynamic_mnist",
    "fetch_fashion_mnist",
    "load_binarized_mnist",
    "load_omniglot",
    "make_chairs",
    "make_pendulum",
]
