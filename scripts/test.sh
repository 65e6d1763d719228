#!/usr/bin/env bash
# Installs etcdx with its test dependencies (Cython extensions built in place) and runs the test
# suite twice: with the compiled extensions, then with their pure-Python twins.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test]'
python3 setup.py -q build_ext --inplace
ruff check .
ETCDX_REQUIRE_EXTENSIONS=1 python3 -m pytest -q "$@"
ETCDX_NO_EXTENSIONS=1 python3 -m pytest -q "$@"
