import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def interest_data():
    from sklattn.datasets import make_interest_sequences

    X, y, p = make_interest_sequences(2000, maxlen=8, return_proba=True, random_state=0)
    return X, y, p


@pytest.fixture(scope="session")
def fitted_din(interest_data):
    """A tiny fitted DIN pipeline shared by read-only tests."""
    from sklearn.pipeline import make_pipeline

    from sklattn import DINClassifier, SequenceEncoder

    X, y, _ = interest_data
    model = make_pipeline(
        SequenceEncoder(sequences={"hist_item": "item", "hist_cat": "cat"}),
        DINClassifier(
            embedding_dim=4, hidden_units=(16,), attention_units=(8,), epochs=2,
            learning_rate=1e-2, l2_reg_embedding=0.0, random_state=0,
        ),
    )
    return model.fit(X, y)
