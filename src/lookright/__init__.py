"""lookright: make vision models look at the right thing, and measure whether they do."""

__version__ = "0.1.0"
