"""
Choosing the prior and the latent dimension by held-out likelihood
==================================================================

:meth:`VHPEstimator.score <sklearn_vhp.VHPEstimator.score>` is the mean
importance-sampled log-likelihood ``log p(x)`` of the rows it is given, so a
:class:`~sklearn.model_selection.GridSearchCV` without a ``scoring`` argument
picks the parameters whose model explains *held-out* data best. Here it
searches the latent dimension ``n_components`` and the prior (the learned
hierarchical prior against the standard normal one, as in the paper's
Table 2) on scikit-learn's 8×8 digits, scaled to [0, 1] (a Gaussian
likelihood: the scores are log-densities in nats, comparable between the
candidates).

What not to search: REWO's tolerance ``kappa``. Its default ``"auto"``
follows the data so that REWO leaves its initial phase and ends at the ELBO
(see :ref:`defaults`); a fixed κ tighter than the reconstruction error a
model can reach keeps REWO in its initial phase, and the prior is never
trained. Search what the model is: the latent dimension, the prior, the
network's size.
"""

import os

import matplotlib

if __name__ == "__main__" and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split

from sklearn_vhp import VHPEstimator

# Gallery builds set SKLEARN_VHP_EXAMPLE_EPOCHS to keep the docs fast: then
# smaller networks, fewer epochs and fewer importance samples per score.
epochs = int(os.environ.get("SKLEARN_VHP_EXAMPLE_EPOCHS", 0)) or None
if epochs:
    # REWO needs a few hundred steps on these rows to reach its main phase
    # (with fewer, fit warns that the prior was never trained): five times
    # the gallery's epochs, 40 at its default of 8.
    params = dict(max_iter=5 * epochs, hidden_layer_sizes=(64, 64), n_eval_samples=100)
    n_components = [2, 8]
else:
    params = dict(max_iter=100, hidden_layer_sizes=(256, 256), n_eval_samples=1000)
    n_components = [2, 4, 8]

X = load_digits().data / 16.0  # 1797 images of 64 pixels, in [0, 1]
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

# %%
# The search
# ----------
# Every candidate is trained with the same ``random_state``, so candidates
# differ only by their parameters. ``cv=3``: each candidate is trained on two
# thirds of the training rows and scored on the rest. Add ``n_jobs=-1`` to
# train candidates in parallel processes (see also the dask example).
search = GridSearchCV(
    VHPEstimator(random_state=0, **params),
    param_grid={"n_components": n_components, "prior": ["vhp", "standard"]},
    cv=3,
)
search.fit(X_train)

# %%
# The cross-validation results
# ----------------------------
# ``cv_results_`` holds one row per candidate; ``mean_test_score`` is the
# held-out log-likelihood per image, averaged over the three folds.
results = pd.DataFrame(search.cv_results_)
columns = [
    "param_prior",
    "param_n_components",
    "mean_test_score",
    "std_test_score",
    "rank_test_score",
    "mean_fit_time",
]
results[columns].sort_values("rank_test_score").round(3)

# %%
# The best candidate, refitted on all training rows, scored on the test set
# the search never saw:
print(f"best parameters: {search.best_params_}")
print(f"cross-validated log-likelihood: {search.best_score_:.2f} nats per image")
print(f"test log-likelihood: {search.score(X_test):.2f} nats per image")
print(f"final β of the refitted model: {search.best_estimator_.beta_:.3g}")

# %%
# Scores per candidate
# --------------------
# One line per prior, the latent dimension along the x-axis; the error bars
# are the standard deviation over the three folds.
fig, ax = plt.subplots(figsize=(6, 3.8))
for prior, group in results.groupby("param_prior"):
    ax.errorbar(
        group["param_n_components"].astype(int),
        group["mean_test_score"],
        yerr=group["std_test_score"],
        marker="o",
        capsize=3,
        label=f"prior={prior!r}",
    )
best = search.best_params_
ax.plot(best["n_components"], search.best_score_, "k*", markersize=14, label="selected")
ax.set_xlabel("n_components")
ax.set_ylabel("held-out log-likelihood (nats / image)")
ax.set_xticks(np.unique(results["param_n_components"].astype(int)))
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()
