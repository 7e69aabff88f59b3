"""The inference engine: a fitted VAE's estimates on numpy rows, in bounded memory.

The counterpart of :mod:`._training` for a fitted model. Each function takes
the module (in the precision wanted), validated numpy rows and the device,
runs the model's own estimates (:meth:`VAE.encode_mean`,
:meth:`VAE.log_marginal`, :meth:`VAE.sample_latent`,
:meth:`VAE.latent_statistics`) on chunks of rows sized by
:func:`._settings.chunk_rows` from the module's :meth:`VAE.memory_per_row`,
and hands numpy back. The estimator validates and delegates here.
"""

import numpy as np
import torch

from ._settings import CPU_CHUNK_MIB, chunk_rows, to_tensor

#: ``decoder_variance="full"``'s mixture is fitted on at most this many training
#: rows, in ``NOISE_MIXTURE_FINISH`` EM iterations after choosing its size and
#: converging on at most ``NOISE_MIXTURE_START_ROWS`` of them (see
#: :func:`fitted_noise_mixture`).
NOISE_MIXTURE_ROWS, NOISE_MIXTURE_START_ROWS, NOISE_MIXTURE_FINISH = 16384, 8192, 5


def _torch_dtype(dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def map_rows(fn, module, X, out_width, device):
    """Apply ``fn`` to row chunks of ``X`` without gradients; numpy out, in ``X``'s dtype."""
    tdtype = _torch_dtype(X.dtype)
    chunk = chunk_rows(module.memory_per_row("map", n_out=out_width))
    out = []
    with torch.no_grad():
        for start in range(0, X.shape[0], chunk):
            x = to_tensor(X[start : start + chunk], tdtype, device)
            out.append(fn(x).cpu().numpy())
    if not out:
        return np.empty((0, out_width), dtype=X.dtype)
    return np.concatenate(out).astype(X.dtype, copy=False)


def log_marginal_rows(module, X, n_samples, *, seed, device, verbose=0):
    """Importance-sampled ``log p(x)`` of each row of ``X`` (float64 out).

    Rows and samples are split into chunks whose temporaries fit in
    ``working_memory`` (on a CPU, at most :data:`._settings.CPU_CHUNK_MIB`,
    which stay in cache); every row sees the same noise (from ``seed``).
    ``verbose > 0``: a progress bar counts the scored rows.
    """
    tdtype = torch.float32 if X.dtype == np.float32 else torch.float64
    pair = module.memory_per_row("log_marginal", itemsize=X.dtype.itemsize)
    cap = CPU_CHUNK_MIB if device.type == "cpu" else None
    s_chunk = min(n_samples, max(1, chunk_rows(pair, cap) // 8))
    r_chunk = chunk_rows(pair * s_chunk, cap)
    out, bar = np.empty(X.shape[0]), None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=X.shape[0], desc="score_samples", unit="row")
    # A prior's frozen form (the VampPrior's components, computed once) is
    # held by this call alone: threads share the model, not their state.
    try:
        with torch.no_grad(), module.prior.frozen() as prior:
            for r0 in range(0, X.shape[0], r_chunk):
                x = to_tensor(X[r0 : r0 + r_chunk], tdtype, device)
                log_p = module.log_marginal(
                    x, n_samples, seed=seed, samples_per_chunk=s_chunk, prior=prior
                )
                out[r0 : r0 + x.shape[0]] = log_p.cpu().numpy()
                if bar is not None:
                    bar.update(x.shape[0])
    finally:
        if bar is not None:
            bar.close()
    return out


def loss_chunk(module, n_importance, min_rows, device):
    """Rows per chunk of a training-loss evaluation (early stopping's score)."""
    row = module.memory_per_row("loss", n_samples=n_importance)
    cap = CPU_CHUNK_MIB if device.type == "cpu" else None
    return max(min_rows, chunk_rows(row, cap))


def calibrated_noise_variance(module, data, seed, train_variance):
    """The Gaussian likelihood's maximum-likelihood variance for the trained networks.

    The networks were trained with a fixed variance, which sets how much the
    KL term weighs against reconstruction (like β); ``score_samples`` then
    measures them at their best variance. A perfect reconstruction
    (constant data) must not give a zero variance: the floor is 1e-4 times
    the training variance.
    """
    return module.fit_noise_variance(
        row_chunks(data, chunk_rows(module.memory_per_row("squared_error"))),
        seed=seed,
        floor=1e-4 * train_variance,
    )


def calibrated_feature_variances(module, data, seed):
    """Set ``decoder_variance="feature"``'s variances to their maximum-likelihood values.

    As :func:`calibrated_noise_variance`, feature by feature (the floor
    stays the likelihood's).
    """
    module.fit_feature_variances(
        row_chunks(data, chunk_rows(module.memory_per_row("squared_error"))), seed=seed
    )


def fitted_noise_mixture(module, data, seed):
    """Fit ``decoder_variance="full"``'s mixture noise to the trained networks.

    On the residuals of at most :data:`NOISE_MIXTURE_ROWS` rows of ``data``
    (evenly spaced). On at most :data:`NOISE_MIXTURE_START_ROWS` of them,
    the number of components and the shrinkage are chosen by held-out
    residuals (:meth:`~._torch.likelihoods.MixtureNoiseLikelihood.select`)
    and the chosen mixture is fitted afresh by EM to convergence (a mixture
    fitted to four fifths of the rows and continued on all can be far off:
    digits lost 17 nats per held-out row so); then it runs
    :data:`NOISE_MIXTURE_FINISH` EM iterations on all (an EM iteration costs
    a pass over the rows: most of them are taken where the mixture is still
    far off on the fewest rows). Returns the mixture's mean variance
    (``noise_variance_``); the module's configuration must then record the
    number of components (``module.likelihood.n_components``).
    """
    rows = _evenly_spaced(data, NOISE_MIXTURE_ROWS)
    chunks = row_chunks(rows, chunk_rows(module.memory_per_row("squared_error")))
    residuals = module.noise_residuals(chunks, seed=seed)
    start = _evenly_spaced(residuals, NOISE_MIXTURE_START_ROWS)
    module.likelihood.select(start)
    variance = module.likelihood.fit(start, n_iter=100)
    if residuals.shape[0] > start.shape[0]:
        variance = module.likelihood.fit(residuals, n_iter=NOISE_MIXTURE_FINISH)
    return variance


def _evenly_spaced(rows, n):
    """At most ``n`` of ``rows``, every k-th (a view)."""
    return rows[:: max(1, -(-rows.shape[0] // n))]


def mean_decoder_variance(module, data, seed):
    """The learned decoder variances' mean over the features and the rows of ``data``.

    What ``noise_variance_`` reports for ``decoder_variance="feature"`` or
    ``"amortized"`` (the density uses the variances themselves).
    """
    return module.mean_decoder_variance(
        row_chunks(data, chunk_rows(module.memory_per_row("squared_error"))), seed=seed
    )


def row_chunks(data, chunk):
    """Float32 tensors of ``chunk`` rows of ``data``: a tensor, or a numpy array on the host."""
    for start in range(0, data.shape[0], chunk):
        rows = data[start : start + chunk]
        yield rows if torch.is_tensor(rows) else to_tensor(rows, torch.float32, "cpu")


def sample_latent(module, n_samples, generator):
    """``n_samples`` codes from the learned prior (numpy).

    The prior's networks run on chunks of rows that fit in ``working_memory``
    (800,000 rows at once peaked at 3.1 GB); the noise is drawn for all rows
    first, so the draws do not depend on the chunks.
    """
    with torch.no_grad():
        chunk = chunk_rows(module.memory_per_row("sample"))
        z = module.sample_latent(n_samples, generator, chunk=chunk)
    return z.cpu().numpy()


def active_units(module, X, n_latent, threshold, device, *, factorised_kl):
    """Activity ``A_u`` (variance over rows of the posterior mean) of each latent unit.

    Returns a dict with the entries of :meth:`VHPEstimator.active_units`:
    ``z_kl`` only when ``factorised_kl`` (the standard prior), the ``ζ``
    entries only when the prior has an auxiliary posterior (else ``None``).
    """
    d = n_latent
    n_aux = module.prior.n_aux if hasattr(module.prior, "aux_posterior") else 0

    def stats(x):
        z_mean, z_kl, zeta_mean, zeta_kl = module.latent_statistics(x)
        parts = [z_mean, z_kl] + ([zeta_mean, zeta_kl] if n_aux else [])
        return torch.cat(parts, dim=1)

    out = map_rows(stats, module, X.astype(np.float64), 2 * d + 2 * n_aux, device)
    z_activity = out[:, :d].var(axis=0)
    result = dict(
        z_activity=z_activity,
        z_active=z_activity > threshold,
        n_active_z=int(np.sum(z_activity > threshold)),
        z_kl=out[:, d : 2 * d].mean(axis=0) if factorised_kl else None,
        zeta_activity=None,
        zeta_active=None,
        n_active_zeta=None,
        zeta_kl=None,
    )
    if n_aux:
        zeta_activity = out[:, 2 * d : 2 * d + n_aux].var(axis=0)
        result.update(
            zeta_activity=zeta_activity,
            zeta_active=zeta_activity > threshold,
            n_active_zeta=int(np.sum(zeta_activity > threshold)),
            zeta_kl=out[:, 2 * d + n_aux :].mean(axis=0),
        )
    return result
