"""Datasets: the pendulum of the paper and loaders for binarized MNIST."""

from ._mnist import load_binarized_mnist
from ._pendulum import make_pendulum

__all__ = ["load_binarized_mnist", "make_pendulum"]
