"""The C extensions; everything else is in pyproject.toml (whose ext-modules table is still experimental)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("chain._smt", ["chain/_smt.c"], libraries=["crypto"], extra_compile_args=["-O2"]),
        Extension("chain._events", ["chain/_events.c"], extra_compile_args=["-O2"]),
    ],
)
