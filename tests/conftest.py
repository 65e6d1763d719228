import pytest

from tests.support.procs import etcd_process, etcdx_process, kill_leftovers


@pytest.fixture(scope="session", autouse=True)
def _stop_leftover_servers():
    yield
    kill_leftovers()


@pytest.fixture
def etcdx_server(tmp_path):
    with etcdx_process(tmp_path).start() as server:
        yield server


@pytest.fixture
def etcd_server(tmp_path):
    with etcd_process(tmp_path).start() as server:
        yield server
