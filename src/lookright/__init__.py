"""lookright: make vision models look at the right thing, and measure whether they do."""

__version__ = "0.1.0"

__all__ = ["load_run"]


def __getattr__(name: str):  # lazy: `import lookright` stays light
    if name == "load_run":
        from lookright.api import load_run

        return load_run
    raise AttributeError(f"module 'lookright' has no attribute {name!r}")
