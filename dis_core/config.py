"""Typed configs as versioned plain data: one (de)serialisation for run records, model files and provenance.

Every stage has a frozen dataclass config. :func:`to_doc` turns one into JSON-able data stamped with
its type and version; :func:`from_doc` rebuilds it from that data using the dataclass's own type
hints (nested configs, tuples, optionals), refusing unknown fields and documents from a newer DIS.
A config class may set ``VERSION: ClassVar[int]`` (default 1) when its meaning changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
TYPE_KEY, VERSION_KEY = "_type", "_version"


def _version(cls: type) -> int:
    return int(getattr(cls, "VERSION", 1))


def plain(value: Any) -> Any:
    """Dataclasses, tuples, paths and numpy scalars as JSON-able data (dataclasses without stamps)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


def to_doc(cfg: Any) -> dict:
    """A config as plain data with its type and version: what run records and model files store."""
    cls = type(cfg)
    return {TYPE_KEY: f"{cls.__module__}.{cls.__qualname__}", VERSION_KEY: _version(cls), **plain(cfg)}


def from_doc(cls: type[T], doc: dict) -> T:
    """Rebuild ``cls`` from :func:`to_doc` data (or unstamped plain data); missing fields take their
    defaults, unknown fields and newer versions are refused with the field named."""
    if not isinstance(doc, dict):
        raise ValueError(f"{cls.__name__}: expected a mapping, got {type(doc).__name__}")
    v = int(doc.get(VERSION_KEY, 1))
    if v > _version(cls):
        raise ValueError(f"{cls.__name__}: configuration version {v} is newer than this DIS ({_version(cls)})")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    data = {k: x for k, x in doc.items() if k not in (TYPE_KEY, VERSION_KEY)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    return cls(**{k: _build(hints[k], x) for k, x in data.items()})


def _build(tp: Any, value: Any) -> Any:
    """Value of type ``tp`` from plain data."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        return _build(real[0], value) if len(real) == 1 else value
    if dataclasses.is_dataclass(tp):
        return from_doc(tp, value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], x) for x in value)
        return tuple(_build(a, x) for a, x in zip(args, value)) if args else tuple(value)
    if origin is list:
        return [_build(args[0], x) for x in value] if args else list(value)
    if origin is dict:
        return {k: _build(args[1], x) for k, x in value.items()} if args else dict(value)
    if tp is Path:
        return Path(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def config_hash(cfg: Any) -> str:
    """Short stable hash of a configuration's values: equal configs give equal hashes."""
    return hashlib.sha256(json.dumps(plain(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16]
