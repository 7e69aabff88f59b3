"""PyTorch modules of sklearn-vhp (``nn.Module`` s only, no scikit-learn).

``networks``   encoder / decoder MLPs
``likelihoods``  p(x|z): Bernoulli (logits) and Gaussian (fixed variance)
``priors``     p(z): standard normal, hierarchical (VHP) and VampPrior
``vae``        the VAE that combines them and computes every loss term
"""

from .likelihoods import BernoulliLikelihood, GaussianLikelihood
from .networks import MLP, GaussianMLP
from .priors import HierarchicalPrior, StandardNormalPrior, VampPrior
from .vae import VAE

__all__ = [
    "BernoulliLikelihood",
    "GaussianLikelihood",
    "GaussianMLP",
    "HierarchicalPrior",
    "MLP",
    "StandardNormalPrior",
    "VAE",
    "VampPrior",
]
