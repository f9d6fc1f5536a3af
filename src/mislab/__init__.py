"""mislab: cheap, rigorous, repeatable science-of-misalignment experiments."""

__version__ = "0.1.0"
