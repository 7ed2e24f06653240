"""Infrastructure guides whose every step is run and checked on a disposable VM."""

__version__ = "0.1.0"
