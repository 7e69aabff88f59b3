import importlib.util
import os
from pathlib import Path

import pytest
import torch

# Two cores: keep every test process to its share and results reproducible.
torch.set_num_threads(int(os.environ.get("SKLEARN_VHP_TEST_THREADS", "1")))


@pytest.fixture
def tiny_kwargs():
    """Settings for a fast model: API tests, not quality tests."""
    return dict(
        hidden_layer_sizes=(16,),
        max_iter=3,
        n_importance=4,
        n_eval_samples=32,
        batch_size=32,
        random_state=0,
    )


@pytest.fixture
def load_benchmark():
    """``load_benchmark(name)`` imports ``benchmarks/<name>.py`` (not a package)."""

    def load(name):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
