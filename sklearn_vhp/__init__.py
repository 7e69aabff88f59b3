"""sklearn-vhp: VAEs with learned hierarchical priors for scikit-learn.

Implements *Learning Hierarchical Priors in VAEs* (Klushyn et al., NeurIPS
2019): :class:`VHPEstimator` (the model, its REWO training and the paper's
baselines) and :class:`ManifoldInterpolator` (graph-based interpolation in
the learned latent space).
"""

from ._estimator import DivergenceWarning, VHPEstimator

__version__ = "0.1.0.dev0"

__all__ = ["DivergenceWarning", "ManifoldInterpolator", "VHPEstimator", "__version__"]


def __getattr__(name):
    # ManifoldInterpolator pulls in scipy.sparse.csgraph; load it on first use.
    if name == "ManifoldInterpolator":
        from ._interpolation import ManifoldInterpolator

        return ManifoldInterpolator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
