import os

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
