"""The training engine: epochs of Adam on a VAE, robust to divergence and Ctrl-C.

It knows nothing of scikit-learn. A :class:`Trainer` runs epochs over a
*batch source*: :class:`ShuffledBatches` (shuffled mini-batches of an
in-memory tensor: ``fit`` on data that fit the memory budget, and each
``partial_fit`` chunk) or :class:`StreamedBatches` (block-shuffled
mini-batches read from a host array or a memmap while the previous block
trains); both have the same members, so the loop is one,
steps the β schedule from every iteration's constraint, rolls an epoch back
when it diverges, stops early on a validation score, and reports through one
:class:`TrainingRecord` of per-iteration statistics. The estimator resolves
the settings, hands over the module, optimiser and schedule, and reads the
results back (``n_iter``, ``learning_rate``, ``record`` ...).
"""

import contextlib
import copy
import ctypes
import functools
import math
import queue
import threading
import warnings

import numpy as np
import torch

from . import _adam

#: Recoveries from a non-finite loss (restore the last finite state, halve the
#: step size) tried in a row before training gives up.
MAX_RECOVERIES = 3

#: Training iterations between host syncs, by device type. Each sync brings
#: the iterations' loss statistics to Python, which checks them and steps the
#: β schedule (REWO and GECO update β from every iteration's constraint). On
#: a CPU a sync costs nothing and 1 gives β its most recent value (the loss
#: is checked before the step); on a GPU a sync per iteration stalls the kernel
#: queue, so β is updated from 32 iterations at once and lags by at most that
#: many, and a non-finite loss is caught at the next sync (the epoch is rolled
#: back either way).
HOST_SYNC_EVERY = {"cpu": 1, "gpu": 32}  # "gpu": any device but the CPU

#: EM iterations of a likelihood fitted in closed form (``decoder_variance="full_trained"``)
#: after each epoch of the main phase, from the last epoch's fit.
REFIT_EM_ITERATIONS = 5


class DivergenceWarning(RuntimeWarning):
    """Training hit a non-finite loss and was rolled back with a smaller step.

    ``fit`` restored the last finite state (weights, optimiser and schedule),
    halved the learning rate and went on; the event is recorded in
    ``divergences_`` and in the ``lr`` column of ``history_``.
    """


class _DataChanged(Exception):
    """A mini-batch held non-finite values that the data's check before training did not see."""


class ShuffledBatches:
    """A batch source: shuffled mini-batches of in-memory rows.

    Each :meth:`epoch` draws a permutation from ``generator`` and yields
    batches of ``batch_size`` rows; the ragged last batch is dropped (unless
    it is the only one). ``generator`` also drives the training noise.
    ``data`` is a float32 tensor on the training device, or a numpy array
    on the host whose batches are gathered and converted to float32 tensors
    one at a time (a CPU fit: no float32 copy of the whole data, the same
    numbers).
    """

    def __init__(self, data, batch_size, generator):
        self.data = data
        self.batch_size = min(batch_size, data.shape[0])
        self.generator = generator

    @property
    def n_samples(self):
        return self.data.shape[0]

    @property
    def steps_per_epoch(self):
        return self.data.shape[0] // self.batch_size

    def epoch(self):
        n, batch = self.data.shape[0], self.batch_size
        perm = torch.randperm(n, generator=self.generator, device=self.generator.device)
        if not torch.is_tensor(self.data):
            perm = perm.numpy()  # host rows: numpy indices, converted once an epoch
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            if idx.shape[0] < batch and start > 0:
                continue  # drop the ragged last batch
            yield self._rows(idx)

    def reference_rows(self, n=4096):
        """About ``n`` rows spread over the data (the prior's standardisation)."""
        return self._rows(slice(None, None, max(1, self.data.shape[0] // n)))

    def _rows(self, idx):
        if torch.is_tensor(self.data):
            return self.data[idx]
        return torch.from_numpy(np.asarray(self.data[idx], dtype=np.float32))


class StreamedBatches:
    """A batch source: block-shuffled mini-batches of rows of a host array.

    ``X`` is any 2-D numpy array (a read-only ``np.memmap`` included) and is
    never read whole: each :meth:`epoch` draws a random order of contiguous
    blocks of ``block_rows`` rows, reads ``buffer_blocks`` blocks at a time
    into a float32 buffer (uint8 or bool rows are converted block by block,
    the rows in ``skip`` left out), draws a permutation of the buffer's rows
    and yields batches of ``batch_size`` rows; rows left over at the end of
    a buffer start the next one's first batch, and the ragged last batch of
    the epoch is dropped. So each row (but those in ``skip`` and fewer than
    ``batch_size`` of the last buffer) is seen once per epoch, and a disk
    reads each block sequentially.

    A background thread reads and converts the next buffer while the current
    one trains (on CUDA into pinned memory, copied with ``non_blocking``),
    so at most three buffers exist at a time. The block order and the row
    permutations come from ``generator`` (drawn in the training thread, the
    order of a single block skipped), which also drives the training noise:
    with one block the batches are those of :class:`ShuffledBatches` on the
    same rows and generator.

    ``reference`` are the rows :meth:`reference_rows` returns (a tensor on
    the device, e.g. a subsample).
    """

    def __init__(
        self, X, batch_size, generator, *, block_rows, buffer_blocks, reference, skip=None
    ):
        self.X, self.generator, self.reference = X, generator, reference
        self.skip = np.sort(np.asarray([] if skip is None else skip, dtype=np.int64))
        self.n_samples = X.shape[0] - self.skip.shape[0]
        self.batch_size = min(batch_size, self.n_samples)
        self.block_rows, self.buffer_blocks = max(1, int(block_rows)), max(1, int(buffer_blocks))
        self.n_blocks = -(-X.shape[0] // self.block_rows)
        self.device = generator.device

    @property
    def steps_per_epoch(self):
        return self.n_samples // self.batch_size

    def epoch(self):
        gen, batch = self.generator, self.batch_size
        order = [0]
        if self.n_blocks > 1:
            order = torch.randperm(self.n_blocks, generator=gen, device=self.device).tolist()
        parts, n_parts = [], 0  # rows of the batch being assembled
        for i, buf in enumerate(_prefetched(self._buffers(order))):
            if i:
                release_free_memory()  # the last buffer's pages, and the steps' garbage
            perm = torch.randperm(buf.shape[0], generator=gen, device=self.device)
            start = 0
            while start < buf.shape[0]:
                take = min(batch - n_parts, buf.shape[0] - start)
                parts.append(buf[perm[start : start + take]])
                n_parts, start = n_parts + take, start + take
                if n_parts == batch:
                    yield parts[0] if len(parts) == 1 else torch.cat(parts)
                    parts, n_parts = [], 0
        # the ragged last batch is dropped

    def _buffers(self, order):
        """The buffers of one epoch, on the device (run in the prefetch thread)."""
        X, skip, rows = self.X, self.skip, self.block_rows
        pin = self.device.type == "cuda"
        for g in range(0, len(order), self.buffer_blocks):
            blocks = []
            for b in order[g : g + self.buffer_blocks]:
                a, e = b * rows, min(X.shape[0], (b + 1) * rows)
                lo, hi = np.searchsorted(skip, [a, e])
                blocks.append((a, e, skip[lo:hi] - a))
            total = sum(e - a - len(out) for a, e, out in blocks)
            if total == 0:
                continue
            buf = torch.empty((total, X.shape[1]), dtype=torch.float32, pin_memory=pin)
            host, pos = buf.numpy(), 0
            for a, e, out in blocks:
                block = X[a:e] if not len(out) else np.delete(X[a:e], out, axis=0)
                host[pos : pos + block.shape[0]] = block  # converted to float32 here
                pos += block.shape[0]
            yield buf.to(self.device, non_blocking=True)

    def reference_rows(self):
        """The rows given as ``reference`` (the prior's standardisation)."""
        return self.reference


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` (another C library)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory():
    """Hand the C heap's free pages back to the system (glibc; elsewhere nothing).

    A streamed fit frees a buffer of up to a quarter of ``working_memory``
    every few steps. glibc then raises its threshold for serving large
    blocks from the heap instead of fresh mappings (to the size of the
    largest freed block, up to 32 MiB), and the steps' temporaries of
    several MiB, freed and allocated again at other places, leave free but
    resident pages in the heap: a one-epoch streamed fit at
    ``working_memory=64`` held 300-400 MiB more than the same fit in memory,
    growing along the epoch. ``malloc_trim(0)`` once a buffer (~1 ms) returns
    them.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _prefetched(items, depth=1):
    """Iterate ``items`` (a generator) in a background thread, ``depth`` items ahead.

    An exception of the thread is raised here; leaving the loop early (a
    rolled-back epoch, Ctrl-C) stops and joins the thread.
    """
    q, stop, done = queue.Queue(maxsize=depth), threading.Event(), object()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the training thread
            put(exc)

    thread = threading.Thread(target=work, name="StreamedBatches", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
        items.close()


class TrainingRecord:
    """Per-iteration statistics: loss, reconstruction, constraint, KL, Ĉ, β, phase, epoch, lr."""

    def __init__(self):
        self.stats, self.constraint_avg, self.beta, self.phase, self.epoch, self.lr = (
            [] for _ in range(6)
        )

    def __len__(self):
        return len(self.stats)

    def append(self, values, *, beta, phase, epoch, lr, constraint_avg):
        self.stats.append(values)
        self.beta.append(beta)
        self.phase.append(phase)
        self.epoch.append(epoch)
        self.lr.append(lr)
        self.constraint_avg.append(constraint_avg)

    def truncate(self, mark):
        """Forget the iterations from ``mark`` on (a rolled-back epoch)."""
        for column in vars(self).values():
            del column[mark:]

    def extend(self, history):
        """``history`` (a dict of arrays, maybe empty) followed by this record."""
        arr = np.asarray(self.stats, dtype=np.float64).reshape(-1, 4)
        new = {
            "loss": arr[:, 0],
            "reconstruction": arr[:, 1],
            "constraint": arr[:, 2],
            "kl": arr[:, 3],
            "constraint_avg": np.asarray(self.constraint_avg, dtype=np.float64),
            "beta": np.asarray(self.beta, dtype=np.float64),
            "phase": np.asarray(self.phase, dtype=object),
            "epoch": np.asarray(self.epoch, dtype=np.int64),
            "lr": np.asarray(self.lr, dtype=np.float64),
        }
        n_old = len(history.get("loss", ()))
        # A model pickled before a column existed gets NaN for its old rows.
        return {
            k: np.concatenate([history[k] if k in history else np.full(n_old, np.nan), v])
            for k, v in new.items()
        }


def make_adam(module, lr):
    """Adam, fused into one kernel where this torch build supports it.

    The per-parameter loop of the default implementation cost ~3 ms of a
    ~18 ms VHP step on 2 CPU threads. :class:`~._adam.FusedAdam` runs
    ``torch.optim.Adam(fused=True)``'s kernel without importing
    ``torch._dynamo`` (1-7 s of a first ``fit``), with the same numbers.
    """
    params = list(module.parameters())
    if _adam.available() and len({(p.device, p.dtype) for p in params}) <= 1:
        return _adam.FusedAdam(params, lr)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


@contextlib.contextmanager
def global_random_state(seed, device):
    """torch's global random state seeded with ``seed`` in the block, then restored.

    For networks that draw from it (a user's dropout): the package's own
    draw from local generators. ``seed=None``: the global state is neither
    seeded nor saved.
    """
    if seed is None:
        yield
        return
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def set_learning_rate(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


class Trainer:
    """Runs epochs of Adam on ``module``; its state is read back by the caller.

    Parameters
    ----------
    module, optimizer, schedule
        The VAE, its Adam and the β schedule, trained in place.
    objective, n_importance
        Passed to ``module.training_loss``.
    learning_rate : float
        The current step size (halved at each divergence).
    n_iter : int
        Epochs completed before this run.
    sync_every : int or None
        Iterations between host syncs; ``None``: the module's device's
        default (:data:`HOST_SYNC_EVERY`).
    train_noise_variance : float
        The Gaussian likelihood's training variance.
    lower_variance_with_kappa : bool
        Lower it to the error level at which ``kappa="auto"`` raised ``κ²``
        (see :meth:`_on_kappa_raised`).
    prior_scaled : bool
        Whether the prior's standardisation was fitted already.
    divergences : list
        Appended to at each divergence.
    verbose : int
        ``> 0``: a progress bar; ``>= 2``: a line per epoch.
    resume : str
        What the warning of an interrupted run (Ctrl-C) advises (the
        caller's words: the engine knows no ``fit`` or ``partial_fit``).
    step_decay : object or None
        Its ``factor(t)`` multiplies the step size at iteration ``t`` (0-based)
        of this run, e.g. a :class:`~._schedules.StepSizeDecay`; ``None``: a
        constant step size. ``learning_rate`` stays the undecayed value; the
        ``lr`` column of the record holds the step size each iteration used.
    """

    def __init__(
        self,
        module,
        optimizer,
        schedule,
        *,
        objective,
        n_importance,
        learning_rate,
        n_iter,
        sync_every,
        train_noise_variance,
        lower_variance_with_kappa,
        prior_scaled,
        divergences,
        verbose=0,
        resume="",
        step_decay=None,
    ):
        self.module, self.optimizer, self.schedule = module, optimizer, schedule
        self.objective, self.n_importance = objective, n_importance
        self.learning_rate, self.n_iter = learning_rate, n_iter
        set_learning_rate(optimizer, learning_rate)
        device = next(module.parameters()).device.type
        self.sync_every = sync_every or HOST_SYNC_EVERY.get(device, HOST_SYNC_EVERY["gpu"])
        self.train_noise_variance = train_noise_variance
        self.lower_variance_with_kappa = lower_variance_with_kappa
        self.prior_scaled, self.divergences, self.verbose = prior_scaled, divergences, verbose
        self.resume = resume
        self.step_decay = step_decay
        self._first_epoch = n_iter  # epochs completed before this run
        self.record = TrainingRecord()
        self.best_validation_score = None

    # ------------------------------------------------------------ the loop
    def run(self, source, max_epochs, validation=None):
        """Run ``max_epochs`` epochs over ``source``.

        The training state (module, optimiser, schedule) is copied in memory
        after every completed epoch (about three times the parameters' size,
        on their device). A non-finite loss or non-finite parameters roll the
        epoch back to that copy and retry it with half the step size; Ctrl-C
        rolls back to it and returns. With ``validation``, an
        :class:`EarlyStopping`, training stops when its score stops improving
        and the best epoch's copy is restored at the end.
        """
        module, schedule = self.module, self.schedule
        self._mark = 0  # len(record) at the end of the last completed epoch
        self._snapshot = self.snapshot()  # state after the last completed epoch
        if validation is not None:
            validation.start(self)
        failures, epochs_done, epoch = 0, 0, self.n_iter + 1
        last_epoch = self.n_iter + max_epochs
        bar = self._progress_bar(max_epochs)
        if not (schedule.train_prior and self._trains_against_fit()):
            # (mixture noise fitted in the main phase stays: see _refit_likelihood)
            module.set_noise_variance(self.train_noise_variance)
        module.train()
        prior_params = module.prior_parameters()
        try:
            while epochs_done < max_epochs:
                epoch = self.n_iter + 1
                bad = self._epoch(source, epoch, prior_params)
                if bad is not None:
                    failures += 1
                    self._rollback()
                    self._handle_divergence(epoch, *bad, failures)
                    continue
                failures = 0
                epochs_done += 1
                if self._end_of_epoch(epoch, validation, bar, last_epoch, source):
                    break
        except KeyboardInterrupt:
            self._rollback()
            warnings.warn(
                f"Training interrupted (KeyboardInterrupt) during epoch {epoch}; the "
                f"estimator holds the model after epoch {self.n_iter}, the last "
                f"completed one. {self.resume}",
                UserWarning,
                stacklevel=5,
            )
        except _DataChanged as exc:
            self._rollback()
            raise ValueError(
                f"{exc} Training met NaN or infinite values in its data at epoch {epoch}, "
                f"which the check of the data before training did not see: the data "
                "changed while fit ran (e.g. written into the memmap or array being "
                "streamed). The estimator holds the model after the last completed "
                f"epoch ({self.n_iter}). Fix the data and continue."
            ) from None
        finally:
            if bar is not None:
                bar.close()
            for p in prior_params:
                p.requires_grad_(True)
            module.eval()
        if validation is not None:
            validation.finish(self)

    def _epoch(self, source, epoch, prior_params):
        """One pass over ``source``; ``None``, or ``(iteration, values)`` if it diverged."""
        module, opt, schedule = self.module, self.optimizer, self.schedule
        pending = []  # statistics still on the device
        # Iterations of this run before this epoch (a rolled-back epoch restarts).
        done = (epoch - 1 - self._first_epoch) * source.steps_per_epoch
        for i, x in enumerate(source.epoch()):
            lr = self.learning_rate
            if self.step_decay is not None:
                lr *= self.step_decay.factor(done + i)
                set_learning_rate(opt, lr)
            train_prior = schedule.train_prior
            if train_prior and not self.prior_scaled:
                self._standardise_prior(source)
            for p in prior_params:
                p.requires_grad_(train_prior)
            beta = schedule.beta
            loss_rows, nll, kl, sq_err = module.training_loss(
                x,
                beta=beta,
                n_importance=self.n_importance,
                generator=source.generator,
                objective=self.objective,
            )
            loss = loss_rows.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # The batch's values are checked on the device, in the same sync: a
            # non-finite loss from non-finite data is the data's fault.
            row = torch.stack(
                [
                    loss.detach(),
                    nll.detach().mean(),
                    sq_err,
                    kl.detach().mean(),
                    torch.isfinite(x).all().to(loss.dtype),
                ]
            )
            pending.append((row, beta, schedule.phase, lr))
            if len(pending) >= self.sync_every:
                bad = self._flush(pending, epoch)
                if bad is not None:
                    return bad
            opt.step()
        if pending:
            bad = self._flush(pending, epoch)
            if bad is not None:
                return bad
        if not self._state_is_finite():
            # A finite loss with an overflowing gradient can leave non-finite
            # weights or Adam moments behind.
            return len(self.record) - self._mark, None
        return None

    def _end_of_epoch(self, epoch, validation, bar, last_epoch, source):
        """Keep the epoch (snapshot, progress); ``True`` to stop early."""
        schedule = self.schedule
        if schedule.train_prior:
            self._refit_likelihood(source, epoch)
        score = validation.score(self.module) if validation is not None else None
        self._snapshot = self.snapshot()
        prev_mark, self._mark = self._mark, len(self.record)
        self.n_iter = epoch
        stop = validation is not None and validation.update(score, self._snapshot)
        if bar is not None:
            bar.update(1)
            postfix = dict(
                phase=schedule.phase,
                beta=f"{schedule.beta:.3g}",
                C=f"{schedule.constraint_avg:.3g}",
            )
            if validation is not None:
                postfix["val"] = f"{score:.4g}"
            bar.set_postfix(postfix)
        if self.verbose >= 2:
            losses = [row[0] for row in self.record.stats[prev_mark : self._mark]]
            c_hat = schedule.constraint_avg
            line = (
                f"Epoch {epoch}/{last_epoch}: "
                f"loss={np.mean(losses) if losses else math.nan:.6g}, "
                f"C={math.nan if c_hat is None else c_hat:.4g}, "
                f"beta={schedule.beta:.4g}, phase={schedule.phase}, lr={self.learning_rate:.3g}"
            )
            if validation is not None:
                line += f", validation={score:.6g}"
            print(line, flush=True)
        if stop and self.verbose:
            print(
                f"Validation score did not improve for {validation.no_improvement} "
                f"consecutive epochs; stopping at epoch {epoch}, keeping "
                f"the best ({validation.best_score:.6g})."
            )
        return stop

    def _trains_against_fit(self):
        """Whether the likelihood is a fitted mixture the networks train against."""
        lik = self.module.likelihood
        return getattr(lik, "trained", False) and lik.is_fitted

    def _refit_likelihood(self, source, epoch):
        """Fit a likelihood fitted in closed form (mixture noise) to the current networks.

        ``decoder_variance="full_trained"`` (:meth:`VAE.noise_residuals`): once the
        prior trains (after REWO's initial phase, which shapes the codes with
        the scalar variance), the networks train against the mixture fitted
        at the end of each epoch to the residuals of the reference rows
        (:data:`REFIT_EM_ITERATIONS` EM iterations from the last fit): EM in
        the noise model, gradient steps in the networks. A no-op for the
        other likelihoods (``"full"``'s mixture is fitted after training only).
        """
        module = self.module
        if not getattr(module.likelihood, "trained", False):
            return
        module.eval()  # (a user's dropout or batch normalisation: see _standardise_prior)
        try:
            residuals = module.noise_residuals([source.reference_rows()], seed=epoch)
            module.likelihood.fit(residuals, n_iter=REFIT_EM_ITERATIONS)
        finally:
            module.train()

    def _rollback(self):
        """Back to the end of the last completed epoch: record and training state."""
        self.record.truncate(self._mark)
        self.restore(self._snapshot)

    def _progress_bar(self, max_epochs):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=max_epochs, desc="VHPEstimator", unit="epoch")

    # ------------------------------------------------------- the iterations
    def _flush(self, pending, epoch):
        """Bring the pending iterations' statistics to the host, in one sync.

        Checks them for non-finite values and feeds the constraint values to
        the β schedule in order. Returns ``None``, or ``(iteration, values)``
        of the first non-finite iteration of the epoch.
        """
        schedule = self.schedule
        rows = torch.stack([p[0] for p in pending]).tolist()
        for (*values, data_finite), (_, beta, phase, lr) in zip(rows, pending):
            if not data_finite:
                raise _DataChanged(
                    f"Iteration {len(self.record) - self._mark + 1} of epoch {epoch}: "
                    "the mini-batch holds NaN or infinite values."
                )
            if not all(math.isfinite(v) for v in values):
                return len(self.record) - self._mark + 1, values
            kappa = getattr(schedule, "kappa", None)
            schedule.step(values[2])
            self.record.append(
                values,
                beta=beta,
                phase=phase,
                epoch=epoch,
                lr=lr,
                constraint_avg=schedule.constraint_avg,
            )
            if kappa is not None and schedule.kappa != kappa:
                self._on_kappa_raised(schedule.kappa**2 / schedule.plateau_margin)
        pending.clear()
        return None

    def _on_kappa_raised(self, level):
        """``kappa="auto"`` raised κ² to 1.5 times an error ``level`` the model reached.

        (On a plateau of the initial phase, or when the constraint held β
        back.) A Gaussian likelihood trained with a variance above that level
        makes β = 1 ask for a coarser reconstruction than the tolerance, and
        β settles below 1: the training variance is lowered to the level.
        """
        if self.lower_variance_with_kappa:
            self.train_noise_variance = min(self.train_noise_variance, float(level))
            self.module.set_noise_variance(self.train_noise_variance)

    def _standardise_prior(self, source):
        """Fit the prior's latent standardisation to the current codes.

        Called once, when the prior starts training (REWO's switch, or the
        first iteration of the other schedules): by then the encoder may have
        spread the latent far beyond unit scale.
        """
        module = self.module
        if module.prior_has_scale:  # the other priors have nothing to fit
            # In eval mode: a user's dropout or batch normalisation would make
            # the codes noisy or update its running statistics.
            module.eval()
            try:
                with torch.no_grad():
                    module.standardise_prior(source.reference_rows())
            finally:
                module.train()
        self.prior_scaled = True

    def _handle_divergence(self, epoch, iteration, values, failures):
        """Halve the step size and warn, or raise after too many failures."""
        if values is None:
            what, loss = "the parameters or Adam's moments became non-finite", math.nan
        else:
            what, loss = f"the loss is not finite (loss={values[0]}, C={values[2]})", values[0]
        if failures > MAX_RECOVERIES:
            raise FloatingPointError(
                f"Training diverged at epoch {epoch}, iteration {iteration}: {what}, "
                f"and {MAX_RECOVERIES} recoveries (restoring the last finite state and "
                f"halving the step size, now {self.learning_rate:.3g}) did not help. "
                "The estimator holds the model after the last completed epoch. Lower "
                "learning_rate, scale the data (e.g. to [0, 1] or with StandardScaler) "
                "or set noise_variance."
            )
        self.learning_rate /= 2.0
        set_learning_rate(self.optimizer, self.learning_rate)
        self.divergences.append(
            {"epoch": epoch, "iteration": iteration, "loss": loss, "lr": self.learning_rate}
        )
        warnings.warn(
            f"Training diverged at epoch {epoch}, iteration {iteration}: {what}. Restored "
            f"the state after epoch {epoch - 1}, halved the step size to "
            f"{self.learning_rate:.3g} and repeated the epoch (recovery {failures} of "
            f"at most {MAX_RECOVERIES}). A smaller learning_rate or scaled data avoid this.",
            DivergenceWarning,
            stacklevel=6,
        )

    # ------------------------------------------------------ training state
    def snapshot(self):
        """Copy of the training state: module and optimiser tensors, schedule."""
        module_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        return (
            module_state,
            copy.deepcopy(self.optimizer.state_dict()),
            copy.deepcopy(vars(self.schedule)),
        )

    def restore(self, snapshot):
        """Load a :meth:`snapshot` in place, keeping the current step size."""
        module_state, optimizer_state, schedule_state = snapshot
        self.module.load_state_dict(module_state)
        # load_state_dict may adopt the given tensors: hand it a copy so that
        # the snapshot survives for a later restore.
        self.optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        set_learning_rate(self.optimizer, self.learning_rate)
        vars(self.schedule).update(copy.deepcopy(schedule_state))
        variance = getattr(self.module.likelihood, "variance", None)
        if variance is not None:  # an epoch that lowered it (_on_kappa_raised) is undone
            self.train_noise_variance = float(variance)

    def _state_is_finite(self):
        """Whether every parameter and every Adam moment is finite (one sync)."""
        tensors = list(self.module.parameters())
        for state in self.optimizer.state.values():
            tensors += [t for t in state.values() if torch.is_tensor(t) and t.is_floating_point()]
        if not tensors:
            return True
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


class EarlyStopping:
    """Early stopping on the validation ELBO per row (minus the loss at ``β = 1``).

    The noise is the same at every evaluation (common random numbers, from
    ``seed``), so scores of successive epochs differ only through the
    weights. ``scores`` (a list, appended to) keeps every epoch's score.
    """

    def __init__(self, data, *, seed, chunk, n_iter_no_change, scores, objective, n_importance):
        self.data, self.seed, self.chunk = data, seed, chunk
        self.n_iter_no_change, self.scores = n_iter_no_change, scores
        self.objective, self.n_importance = objective, n_importance
        self.best, self.best_score, self.no_improvement = None, -math.inf, 0

    def score(self, module):
        data, n = self.data, self.data.shape[0]
        gen = torch.Generator(device=data.device).manual_seed(self.seed)
        total = torch.zeros((), dtype=torch.float64, device=data.device)
        training = module.training
        module.eval()
        try:
            with torch.no_grad():
                for start in range(0, n, self.chunk):
                    loss, *_ = module.training_loss(
                        data[start : start + self.chunk],
                        beta=1.0,
                        n_importance=self.n_importance,
                        generator=gen,
                        objective=self.objective,
                    )
                    total += loss.sum(dtype=torch.float64)
        finally:
            module.train(training)
        return -float(total) / n

    def start(self, trainer):
        if trainer.n_iter > 0:  # warm start: the starting model is the one to beat
            self.best, self.best_score = trainer._snapshot, self.score(trainer.module)

    def update(self, score, snapshot):
        """Record an epoch's score; ``True`` when training should stop."""
        self.scores.append(score)
        if score > self.best_score:
            self.best, self.best_score, self.no_improvement = snapshot, score, 0
        else:
            self.no_improvement += 1
        return self.no_improvement > self.n_iter_no_change

    def finish(self, trainer):
        if self.best is not None and self.best is not trainer._snapshot:
            trainer.restore(self.best)
        trainer.best_validation_score = None if self.best is None else float(self.best_score)
