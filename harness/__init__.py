"""EV charging interoperability test harness.

The packages and their layers are described in ARCHITECTURE.md; ``lint-imports`` checks that
each imports only the layers below it.
"""



def __getattr__(name: str) -> str:
    # the installed version, looked up on first use (importlib.metadata is slow to import)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("evcharge-harness")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
