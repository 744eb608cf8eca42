"""The errors DIS raises on purpose: each names what went wrong and where."""

from __future__ import annotations


class DISError(Exception):
    """Base class for problems DIS can name precisely (bad input, missing model, ...)."""


class ManifestError(DISError):
    """A manifest is invalid; ``problems`` lists every problem found, with row numbers."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"manifest {path}: {len(self.problems)} problem(s):\n{lines}")


class VideoError(DISError):
    """A video cannot be opened or decoded."""


class ModelError(DISError):
    """The Face Landmarker model is missing, unreadable or not the expected file."""


class OutputError(DISError):
    """An output cannot be written or an existing one is unusable."""
