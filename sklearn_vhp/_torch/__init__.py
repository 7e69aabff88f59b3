"""PyTorch modules of sklearn-vhp (``nn.Module`` s only, no scikit-learn).

``networks``   encoder / decoder MLPs
``likelihoods``  p(x|z): Bernoulli (logits) and Gaussian (fixed variance)
``priors``     p(z): standard normal, hierarchical (VHP) and VampPrior
``conv``       convolutional encoders and decoders for images
``vae``        the VAE that combines them, computes every loss term and owns
               its estimates (``log_marginal``, ``memory_per_row``)
``factory``    construction, not a module: ``build_vae`` turns plain settings
               into a VAE and ``reset_parameters`` initialises it
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
