import pytest

from runtime_kit import write_slice


@pytest.fixture
def tiny_data(tmp_path):
    """256 training images in 2 batch files and 100 test images, cut from the bundled sample."""
    return write_slice(tmp_path / "data", 256, 100)
