import pytest

from tests.support.store import BACKENDS, Store


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """A Store (tests/support/store.py) on each backend, committing after every apply."""
    s = Store(request.param, str(tmp_path / "db"))
    yield s
    s.close()
