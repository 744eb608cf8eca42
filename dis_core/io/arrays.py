"""Dataclasses of named arrays (fitted bases) as .npz bytes: one file format, one content hash."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import TypeVar

import numpy as np

A = TypeVar("A", bound="ArrayRecord")


class ArrayRecord:
    """Mixin for a dataclass whose fields are numpy arrays: saved as an uncompressed .npz of its fields in
    declaration order (so equal contents give equal bytes and an equal ``sha256``), read back without pickle."""

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        return buf.getvalue()

    @classmethod
    def from_file(cls: type[A], path: Path) -> A:
        """Read back; a truncated or damaged file is a ValueError naming it (zipfile's own errors are neither
        OSError nor ValueError, and reached the user as an internal error)."""
        import zipfile

        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(**{f.name: z[f.name] for f in dataclasses.fields(cls)})
        except (zipfile.BadZipFile, EOFError) as e:
            raise ValueError(f"{path}: not a complete .npz file ({e})") from None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()
