"""Per-call torch threads on a busy machine, and the cheap model-selection score.

The machine's state is read by functions of ``sklearn_vhp._settings``
(``available_cores``, ``busy_cores``, ``runnable_tasks``): the tests replace
them (test hooks) to play a quiet or a busy machine, and watch the threads
each network runs with.
"""

import os
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from _threads import run_concurrently
from threadpoolctl import threadpool_limits

import sklearn_vhp._settings as settings
from sklearn_vhp import VHPEstimator
from sklearn_vhp._torch.networks import MLP

SMALL = dict(hidden_layer_sizes=(8,), max_iter=2, n_importance=4, n_eval_samples=16, random_state=0)


@pytest.fixture
def X():
    return np.random.RandomState(0).rand(60, 6)


@pytest.fixture
def fitted(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VHPEstimator(**SMALL).fit(X)


@pytest.fixture
def two_threads():
    """torch at 2 threads in this thread during the test (conftest sets 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def machine(monkeypatch):
    """``machine(cores, busy)`` plays a machine with ``busy`` of its ``cores`` taken."""

    def play(cores, busy):
        monkeypatch.setattr(settings, "available_cores", lambda: cores)
        monkeypatch.setattr(settings, "busy_cores", lambda: busy)

    return play


@pytest.fixture
def seen(monkeypatch):
    """The torch thread counts the networks ran with."""
    counts = []
    forward = MLP.forward

    def spy(self, x):
        counts.append(torch.get_num_threads())
        return forward(self, x)

    monkeypatch.setattr(MLP, "forward", spy)
    return counts


def _every_call(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X)
    est.transform(X)
    est.inverse_transform(est.transform(X))
    est.score_samples(X)
    est.score(X)
    est.sample(3)
    est.active_units(X)


@pytest.mark.parametrize("busy, expected", [(0, 2), (3, 1), (2, 2), (8, 1)])
def test_calls_run_on_the_idle_cores_and_restore_the_callers_threads(
    X, two_threads, machine, seen, busy, expected
):
    machine(cores=4, busy=busy)
    _every_call(VHPEstimator(**SMALL), X)
    assert set(seen) == {expected}
    assert torch.get_num_threads() == 2


def test_a_failed_call_restores_the_threads_too(fitted, two_threads, machine):
    machine(cores=2, busy=1)
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match="n_score_samples"):
        fitted.set_params(n_score_samples=0).score(np.ones((2, 6)))
    assert torch.get_num_threads() == 2


def test_a_threadpoolctl_limit_is_honoured(X, two_threads, machine, seen):
    machine(cores=4, busy=0)  # a quiet machine: the limit alone lowers the count
    with threadpool_limits(limits=1, user_api="openmp"):
        _every_call(VHPEstimator(**SMALL), X)
        assert torch.get_num_threads() == 1
    assert set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_never_more_threads_than_the_caller_asked_for(X, machine, seen):
    machine(cores=64, busy=0)  # conftest: 1 thread
    _every_call(VHPEstimator(**SMALL), X)
    assert set(seen) == {1}


#: Run in a fresh process whose OpenMP workers spin until work comes
#: (``OMP_WAIT_POLICY=active``: what they do for a while after every parallel
#: region anyway). The machine is played as one where every runnable task is
#: this process's own, counted here independently of the package.
OWN_THREADS = """
import os, threading, time, torch
import sklearn_vhp._settings as settings

def own_runnable():
    states = []
    for task in os.scandir("/proc/self/task"):
        with open(os.path.join(task.path, "stat"), "rb") as f:
            states.append(f.read().rsplit(b")", 1)[1].split()[0])
    return states.count(b"R")

settings.runnable_tasks = own_runnable
torch.set_num_threads(2)
a = torch.randn(512, 512)
a @ a  # a parallel region: its worker now spins
spinning = own_runnable()
print("idle workers", spinning, settings.busy_cores(), settings.call_threads())
stop = threading.Event()
def work():  # a Python thread of this process at work: a concurrent call
    b = torch.randn(3000, 3000)
    while not stop.is_set():
        b @ b  # (long products: rarely between two, waiting for the GIL)
worker = threading.Thread(target=work)
worker.start()
while own_runnable() < spinning + 1:
    time.sleep(0.001)
print("python thread", settings.busy_cores(), settings.call_threads())
stop.set()
worker.join()
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
def test_idle_openmp_workers_are_not_busy_cores_but_python_threads_are():
    """torch's OpenMP workers spin for a while after each parallel region.

    A call right after a 2-thread call counted them as another program's
    and ran with 1 thread: back-to-back calls on an idle 2-core machine
    alternated between 2 and 1 threads. Another Python thread of the
    process at work (a concurrent call) still takes a core.
    """
    env = {**os.environ, "OMP_WAIT_POLICY": "active"}
    out = subprocess.run(
        [sys.executable, "-c", OWN_THREADS], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].split()[:2] == ["idle", "workers"]
    spinning, busy, threads = map(int, out[0].split()[2:])
    assert spinning >= 2, "the OpenMP worker did not spin: the test tests nothing"
    assert (busy, threads) == (0, min(2, settings.available_cores()))
    busy, threads = map(int, out[1].split()[2:])
    assert (busy, threads) == (1, max(1, min(2, settings.available_cores() - 1)))


def test_concurrent_calls_on_a_busy_machine_agree_and_restore(fitted, X, two_threads, machine):
    machine(cores=2, busy=1)
    serial = fitted.score_samples(X), fitted.transform(X)
    results = run_concurrently(lambda: (fitted.score_samples(X), fitted.transform(X)), 4, 2)
    for scores, codes in results:
        np.testing.assert_array_equal(scores, serial[0])
        np.testing.assert_array_equal(codes, serial[1])
    assert torch.get_num_threads() == 2


@pytest.fixture
def one_thread():
    """torch at 1 thread in this thread during the test (whatever conftest's count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_lowered_count_does_not_leak_into_other_threads(fitted, X, two_threads, machine):
    """A call lowers its own thread's count only: other threads keep the process default.

    ``torch.set_num_threads`` also sets the default that a thread adopts at
    its first torch operation; three concurrent calls from a thread pool on a
    busy machine left pool threads at 1 thread for good.
    """
    machine(cores=2, busy=1)
    seen = {}
    forward = MLP.forward

    def spy(self, x):
        if "meanwhile" not in seen:
            seen["caller"] = torch.get_num_threads()
            t = threading.Thread(target=lambda: seen.update(meanwhile=torch.get_num_threads()))
            t.start()
            t.join()
        return forward(self, x)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MLP, "forward", spy)
        fitted.score_samples(X)
    assert seen == {"caller": 1, "meanwhile": 2}
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: fitted.score_samples(X), range(9)))
        after = set(pool.map(lambda _: torch.get_num_threads(), range(9)))
    assert after == {2}
    assert torch.get_num_threads() == 2


def test_same_model_on_a_busy_and_on_a_quiet_machine(X, machine, one_thread):
    # A single thread: the rule only ever lowers the count, so the machine's
    # load cannot change the numbers (at 2 threads it would pick 2 or 1, and
    # the matrix products would round differently).
    fits = []
    for busy in (0, 7):
        machine(cores=8, busy=busy)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = VHPEstimator(**SMALL).fit(X)
        fits.append((est.history_["loss"], est.transform(X), est.score_samples(X)))
    for a, b in zip(*fits):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------- score's sample count
def test_score_is_the_mean_log_likelihood_at_n_score_samples(fitted, X):
    est = fitted.set_params(n_eval_samples=500)
    assert est.score(X) == est.set_params(n_eval_samples=100).score_samples(X).mean()
    est.set_params(n_eval_samples=500, n_score_samples=37)
    assert est.score(X) == est.set_params(n_eval_samples=37).score_samples(X).mean()
    # "auto" never uses more samples than score_samples: then they agree.
    est.set_params(n_eval_samples=16, n_score_samples="auto")
    assert est.score(X) == est.score_samples(X).mean()


def test_fewer_score_samples_give_a_lower_noisier_bound(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = VHPEstimator(**{**SMALL, "max_iter": 5}).fit(X)
    cheap = est.set_params(n_score_samples=5).score(X)
    rich = est.set_params(n_score_samples=2000).score(X)
    assert cheap < rich  # importance sampling: the bound tightens with samples
    assert rich - cheap < 5.0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "fast", None])
def test_a_bad_n_score_samples_is_refused_when_score_runs(fitted, X, bad):
    before = fitted.transform(X)
    fitted.set_params(n_score_samples=bad)
    with pytest.raises(ValueError, match="n_score_samples must be a positive integer or 'auto'"):
        fitted.score(X)
    fitted.score_samples(X)  # score_samples does not use it
    np.testing.assert_array_equal(fitted.transform(X), before)
    with pytest.raises(ValueError, match="n_score_samples"):
        VHPEstimator(n_score_samples=bad).fit(X)
