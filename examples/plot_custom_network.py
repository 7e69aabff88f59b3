"""
Your own networks: a temporal convolution over windows of a signal
==================================================================

The built-in networks are fully connected (``architecture="mlp"``) or 2-D
image convolutions (``"conv"``, ``"gated_conv"``). Windows of a time series
call for something else: a **1-D convolution over time**, which sees the
same local pattern wherever it occurs in the window. Pass it as
``encoder=`` and ``decoder=`` and keep the rest of the estimator: the
hierarchical prior, REWO, ``score_samples``, pipelines and persistence (see
:ref:`custom_networks`).

The data are windows of 64 samples of a noisy signal, each with one pulse
at a random position and of a random width: two numbers describe a window,
so a 2-D latent space can hold them. Each row is reshaped to
``image_shape=(1, 64)`` (one channel, 64 time steps) before it reaches the
encoder, which returns features; the package adds the Gaussian head. The
decoder maps the 2-D codes back to the 64 values of a window.

Both networks are given as classes: the package builds them with the
arguments their constructors name (``image_shape``, ``n_components``,
``n_features``), under a seed from ``random_state``, and trains copies.
"""

import os

import matplotlib

if __name__ == "__main__" and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from sklearn_vhp import VHPEstimator

# Gallery builds set SKLEARN_VHP_EXAMPLE_EPOCHS to keep the docs fast.
epochs = int(os.environ.get("SKLEARN_VHP_EXAMPLE_EPOCHS", 0)) or None
n_windows, max_iter = (1500, 6 * epochs) if epochs else (4000, 100)
torch.set_num_threads(1)  # small networks: one thread is the fastest on a CPU

# %%
# Windows of a signal
# -------------------
rng = np.random.RandomState(0)
t = np.arange(64) / 64
position = rng.uniform(0.1, 0.9, size=(n_windows, 1))
width = rng.uniform(0.02, 0.06, size=(n_windows, 1))
X = np.exp(-0.5 * ((t - position) / width) ** 2) + 0.05 * rng.randn(n_windows, 64)
X_train, X_test = X[: -n_windows // 5], X[-n_windows // 5 :]
position_train = position[: -n_windows // 5, 0]


# %%
# The networks
# ------------
# The encoder maps a batch ``(B, 1, 64)`` to features ``(B, ...)``: strided
# convolutions over time, then a dense layer. The decoder maps codes
# ``(B, n_components)`` to ``(B, 64)`` means of the (Gaussian) likelihood:
# a dense layer to a short sequence of 16 channels, then transposed
# convolutions that double its length back to 64, plus a linear shortcut.
# Its ``set_linear`` lets the PCA start (``init="pca"``, the default) begin
# the decoder at PCA's reconstruction, as the built-in decoders do; a
# decoder without it keeps its own initialisation.
class TemporalEncoder(nn.Module):
    def __init__(self, image_shape, channels=16):
        super().__init__()
        c, length = image_shape
        self.net = nn.Sequential(
            nn.Conv1d(c, channels, 5, stride=2, padding=2),  # 64 -> 32
            nn.ELU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2),  # 32 -> 16
            nn.ELU(),
            nn.Flatten(),
            nn.Linear(channels * length // 4, 64),
            nn.ELU(),
        )

    def forward(self, x):
        return self.net(x)


class TemporalDecoder(nn.Module):
    def __init__(self, n_components, n_features, channels=16):
        super().__init__()
        self.channels, self.length = channels, n_features // 4
        self.dense = nn.Sequential(nn.Linear(n_components, 64), nn.ELU())
        self.expand = nn.Linear(64, channels * self.length)
        self.deconv = nn.Sequential(
            nn.ELU(),
            nn.ConvTranspose1d(channels, channels, 4, stride=2, padding=1),  # 16 -> 32
            nn.ELU(),
            nn.ConvTranspose1d(channels, 1, 4, stride=2, padding=1),  # 32 -> 64
        )
        self.shortcut = nn.Linear(n_components, n_features)

    def forward(self, z):
        h = self.expand(self.dense(z)).reshape(-1, self.channels, self.length)
        return self.deconv(h).flatten(1) + self.shortcut(z)

    @torch.no_grad()
    def set_linear(self, weight, bias):
        # The PCA start (init="pca") calls this with PCA's reconstruction:
        # the decoder starts as that linear map, its convolutions at zero.
        last = self.deconv[-1]
        last.weight.zero_()
        last.bias.zero_()
        self.shortcut.weight.copy_(weight)
        self.shortcut.bias.copy_(bias)


# hidden_layer_sizes sets the widths of the prior's networks (and of the
# built-in MLP below).
common = dict(
    n_components=2,
    hidden_layer_sizes=(64, 64),
    max_iter=max_iter,
    n_eval_samples=200,
    random_state=0,
)
conv = VHPEstimator(encoder=TemporalEncoder, decoder=TemporalDecoder, image_shape=(1, 64), **common)
conv.fit(X_train)

# %%
# The same estimator with the built-in fully connected networks, for
# comparison. Measured on one machine: 79.9 (convolution) and 77.4 (MLP)
# nats per window at the gallery's size, 87.4 and 87.0 at the full size
# (``python examples/plot_custom_network.py``; both with the default
# mixture noise of data this narrow, ``decoder_variance_ == "full"``).
mlp = VHPEstimator(**common).fit(X_train)
n_weights = {
    name: sum(p.numel() for p in est.module_.parameters())
    for name, est in [("temporal convolution", conv), ("built-in MLP", mlp)]
}
for name, est in [("temporal convolution", conv), ("built-in MLP", mlp)]:
    print(
        f"{name:>20}: held-out log-likelihood {est.score(X_test):8.2f} nats per "
        f"window, {n_weights[name]} weights"
    )

# %%
# The latent space
# ----------------
# Each window is a point of its 2-D code, coloured by its pulse's position; the
# prior's samples (grey) cover the same region. Below, test windows and
# their reconstructions ``inverse_transform(transform(X))``.
Z = conv.transform(X_train)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].scatter(*conv.sample_latent(1000, random_state=0).T, s=2, c="0.8", label="prior")
sc = axes[0].scatter(*Z.T, c=position_train, s=3, cmap="viridis")
fig.colorbar(sc, ax=axes[0], label="position of the pulse")
axes[0].set(title="Codes of the windows", xlabel="z1", ylabel="z2")
axes[0].legend(loc="upper right", markerscale=4)
recon = conv.inverse_transform(conv.transform(X_test[:3]))
for i in range(3):
    axes[1].plot(X_test[i] + 1.5 * i, color="0.6", lw=1)
    axes[1].plot(recon[i] + 1.5 * i, color=f"C{i}", lw=2)
axes[1].set(title="Test windows (grey) and reconstructions", xlabel="time step", yticks=[])
fig.tight_layout()
plt.show()
