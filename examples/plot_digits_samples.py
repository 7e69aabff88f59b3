"""
Digits: samples, reconstructions and likelihoods of three priors
================================================================

A small version of the paper's Table 2 on scikit-learn's 8×8 digits,
binarised at 0.5 (like the static binarised MNIST of the paper, so
``likelihood="auto"`` picks a Bernoulli decoder and the likelihoods are
probabilities). Four models with the same encoder, decoder and budget:

* **VHP + REWO** — the learned hierarchical prior with the paper's schedule
  (``VHPEstimator()``'s defaults, with κ = 0.25 for this small data set);
* **VHP, β = 1** — the same prior trained on the plain ELBO
  (``schedule="constant"``);
* **VAE** — the standard-normal prior (``prior="standard"``), β = 1;
* **VampPrior** — a mixture of the encoder's posteriors at learned
  pseudo-inputs (``prior="vamp"``), β = 1.

Each is scored by its held-out negative log-likelihood
``-score_samples(X_test)`` (importance-sampled, in nats per image; lower is
better), and shows decoded samples from its prior, ``sample()``, and
reconstructions of test digits, ``inverse_transform(transform(X))``. With a
budget of a few seconds the differences are small; the paper's numbers
need hours of training (see ``benchmarks/mnist_nll.py``).
"""

import os
import time

import matplotlib

if __name__ == "__main__" and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_vhp import VHPEstimator

# Gallery builds set SKLEARN_VHP_EXAMPLE_EPOCHS to keep the docs fast. The
# digits are few (21 batches per epoch), so the gallery trains 4× that many
# epochs, with two hidden layers of 128 and 200 importance samples per score.
epochs = int(os.environ.get("SKLEARN_VHP_EXAMPLE_EPOCHS", 0)) or None
if epochs:
    common = dict(max_iter=4 * epochs, hidden_layer_sizes=(128, 128), n_eval_samples=200)
else:
    common = dict(max_iter=100, hidden_layer_sizes=(256, 256), n_eval_samples=1000)
common.update(n_components=8, encoder_variance="amortized", random_state=0)

digits = load_digits()
X = (digits.data / 16.0 > 0.5).astype(np.float64)  # binary 8×8 images
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

models = {
    "VHP + REWO": VHPEstimator(prior="vhp", kappa=0.25, **common),
    "VHP, β = 1": VHPEstimator(prior="vhp", schedule="constant", **common),
    "VAE (standard prior)": VHPEstimator(prior="standard", schedule="constant", **common),
    "VampPrior": VHPEstimator(prior="vamp", schedule="constant", n_pseudo_inputs=100, **common),
}

# %%
# Fit and score
# -------------
# ``encoder_variance="amortized"`` gives every input its own posterior
# variance, the usual VAE encoder, which suits likelihood (the default
# ``"shared"`` targets the layout of low-dimensional latent spaces).
rows = []
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train)
    fit_time = time.perf_counter() - start
    rows.append(
        {
            "model": name,
            "test NLL (nats)": -model.score(X_test),
            "train NLL (nats)": -model.score(X_train),
            "final β": model.beta_,
            "active units of z": model.active_units(X_test).n_active_z,
            "fit time (s)": fit_time,
        }
    )
table = pd.DataFrame(rows).set_index("model")
table.round(3)

# %%
# Samples and reconstructions
# ---------------------------
# Top: eight test digits. Then, per model, their reconstructions (decoder
# means: pixel probabilities) and eight samples from the learned prior.


def image_row(ax, images, title):
    """Draw 8×8 images side by side on one axes."""
    images = np.asarray(images).reshape(-1, 8, 8)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
    ax.imshow(np.hstack(list(padded)), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize="small", loc="left")
    ax.set_axis_off()


n_show = 8
fig, axes = plt.subplots(1 + 2 * len(models), 1, figsize=(6, 1.0 * (1 + 2 * len(models))))
image_row(axes[0], X_test[:n_show], "test digits")
for i, (name, model) in enumerate(models.items()):
    reconstructions = model.inverse_transform(model.transform(X_test[:n_show]))
    image_row(axes[1 + 2 * i], reconstructions, f"{name}: reconstructions")
    image_row(axes[2 + 2 * i], model.sample(n_show, random_state=1), f"{name}: samples")
fig.tight_layout()
plt.show()

# %%
# Per-image likelihoods
# ---------------------
# ``score_samples`` gives one log-likelihood per image: the models agree on
# which digits are hard to explain.
scores = pd.DataFrame({name: model.score_samples(X_test) for name, model in models.items()})
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.boxplot([-scores[name] for name in scores], showfliers=False)
ax.set_xticks(range(1, len(scores.columns) + 1), scores.columns, fontsize="small")
ax.set_ylabel("NLL per test image (nats)")
fig.tight_layout()
plt.show()
