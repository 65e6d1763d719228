"""Builds etcdx's Cython extensions (etcdx/_native/_*.pyx).

ETCDX_NO_EXTENSIONS=1 at build time skips compiling; at run time it selects the pure-Python twins.
"""

import glob
import os

from setuptools import Extension, setup

extensions = []
if os.environ.get("ETCDX_NO_EXTENSIONS", "") in ("", "0"):
    from Cython.Build import cythonize

    sources = sorted(glob.glob("etcdx/_native/_*.pyx"))
    extensions = cythonize(
        [Extension(f"etcdx._native.{os.path.basename(s)[:-4]}", [s], extra_compile_args=["-O2"]) for s in sources],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )

setup(ext_modules=extensions)
