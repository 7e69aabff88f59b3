"""Datasets: the pendulum, chairs, CMU mocap, and loaders for the MNIST family and Omniglot."""

from ._binarize import DynamicBinarizer
from ._chairs import make_chairs
from ._mnist import load_binarized_mnist
from ._mocap import Skeleton, features_to_channels, load_cmu_mocap, read_amc, read_asf
from ._omniglot import load_omniglot
from ._openml import fetch_dynamic_mnist, fetch_fashion_mnist
from ._pendulum import make_pendulum

__all__ = [
    "DynamicBinarizer",
    "Skeleton",
    "fetch_dynamic_mnist",
    "features_to_channels",
    "fetch_fashion_mnist",
    "load_binarized_mnist",
    "load_cmu_mocap",
    "load_omniglot",
    "make_chairs",
    "make_pendulum",
    "read_amc",
    "read_asf",
]
