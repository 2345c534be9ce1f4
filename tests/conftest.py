from __future__ import annotations

import os
from pathlib import Path

import pytest

from tiny import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SPILLOVER_DATA_DIR", REPO.parent / "shared" / "datasets"))


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each test picks its own device: accelerate's process-wide state is otherwise fixed by the
    first Accelerator of the test run (a CPU one made a GPU machine's later tests run on the CPU)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random chat model directory (built once per test session)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def refusing_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model fine-tuned to refuse every prompt with a marker (see study_stubs.py)."""
    from study_stubs import build_refusing_model

    return build_refusing_model(tiny_model_dir, tmp_path_factory.mktemp("refusing"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline dataset mirror (../shared/datasets or $SPILLOVER_DATA_DIR)."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"dataset mirror not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def aligned_model():
    """The real embedded aligned model (Qwen2.5-Coder-0.5B-Instruct), loaded once."""
    from spillover.models import DEFAULT_ALIGNED, load_model

    return load_model(DEFAULT_ALIGNED)
