"""Compile proto/*.proto into etcdx/pb/ (committed; tests/unit/test_generated_proto.py checks it is current).

Run from anywhere: ``python proto/generate.py``. Needs grpcio-tools, the version the test extra pins (the
``*_pb2_grpc.py`` files name it). protoc emits top-level imports such as ``from mvccpb import kv_pb2``; they are
rewritten to live under the ``etcdx.pb`` package.
"""

import pathlib
import re
import shutil
import sys
import tempfile

from grpc_tools import protoc

PROTO_ROOT = pathlib.Path(__file__).resolve().parent
OUT_ROOT = PROTO_ROOT.parent / "etcdx" / "pb"
PACKAGES = ("etcdserverpb", "mvccpb", "authpb", "v3lockpb", "v3electionpb", "etcdxpb", "grpc")
IMPORT_RE = re.compile(r"^from (" + "|".join(PACKAGES) + r")((?:\.\w+)*) import (\w+_pb2)", re.M)


def generate(out_root: pathlib.Path) -> None:
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={tmp}", f"--grpc_python_out={tmp}", *sources]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        if out_root.exists():
            shutil.rmtree(out_root)
        for path in sorted(pathlib.Path(tmp).rglob("*.py")):
            text = IMPORT_RE.sub(r"from etcdx.pb.\1\2 import \3", path.read_text())
            target = out_root / path.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for folder in [out_root, *(p for p in out_root.rglob("*") if p.is_dir())]:
            (folder / "__init__.py").touch()


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_ROOT)
