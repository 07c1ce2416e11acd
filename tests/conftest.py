"""Shared test fixtures."""
from pathlib import Path

import pytest

# The read-only benchmark copies live next to the repository (../shared/data); tests that use
# them skip when they are absent, so the suite runs anywhere.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA
