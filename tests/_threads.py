"""Run a callable from several threads at once (thread-safety tests)."""

import threading


def run_concurrently(fn, n_threads=4, repeats=1):
    """Results of ``fn()`` called ``repeats`` times in each of ``n_threads`` threads.

    The threads start together (a barrier); an exception in any thread fails
    the calling test.
    """
    results, errors = [], []
    barrier = threading.Barrier(n_threads)

    def work():
        try:
            barrier.wait()
            for _ in range(repeats):
                results.append(fn())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results
