"""Trees of the driver data model as JSON-ready documents, for a driver's own state files.

A driver that keeps the trees it serves (to re-render them after a restart, to compare them
in ``verify``) stores ``to_document(lb)`` and reads it back with ``from_document``. Private keys
never reach a document: each is stored as its fingerprint, and read back as a
:class:`StoredKey` that compares equal to the key it stands for but cannot be revealed (the
driver keeps the real key in its own protected file, or asks for the tree again).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from lbaas.drivers import model
from lbaas.drivers.model import Sensitive


def to_document(value: Any) -> Any:
    """``value`` (any object of :mod:`lbaas.drivers.model`) as JSON-ready data.

    A :class:`Sensitive` becomes ``{"sensitive": <fingerprint>}``: a stored tree tells whether
    the key changed, never what it is. :func:`from_document` reads it back, with the key as a
    placeholder the driver must not serve (it keeps the real key in its own protected file).
    """
    if isinstance(value, Sensitive):
        return {"sensitive": value.fingerprint}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_document(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) != f.default or f.default is dataclasses.MISSING
        }
    if isinstance(value, tuple | list):
        return [to_document(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


class StoredKey(Sensitive):
    """The placeholder :func:`from_document` puts where a key was: equal to any key with the
    same fingerprint, so a stored tree compares equal to the tree it was written from."""

    __slots__ = ()

    def __init__(self, fingerprint: str) -> None:
        self._value = ""
        self._fingerprint = fingerprint

    def reveal(self) -> str:
        raise ValueError("a key read back from a stored document is not available")


def from_document(cls: type[Any], data: Any) -> Any:
    """The inverse of :func:`to_document` for model class ``cls`` (fields checked by type,
    unknown keys refused): ``from_document(LoadBalancer, doc)``.

    :raises ValueError: the document does not describe a ``cls``.
    """
    return _load(cls, data)


def load_balancer(data: Any) -> model.LoadBalancer:
    """``from_document(LoadBalancer, data)``, typed."""
    found: model.LoadBalancer = _load(model.LoadBalancer, data)
    return found


def _load(tp: Any, data: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if data is None:
            return None
        return _load(args[0], data)
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(tp)
        if not isinstance(data, list):
            raise ValueError(f"expected a list, got {type(data).__name__}")
        return tuple(_load(item, v) for v in data)
    if tp is Sensitive:
        if not isinstance(data, Mapping) or "sensitive" not in data:
            raise ValueError("expected a stored key fingerprint")
        return StoredKey(str(data["sensitive"]))
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return tp(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, Mapping):
            raise ValueError(f"expected an object for {tp.__name__}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fields for {tp.__name__}: {sorted(unknown)}")
        return tp(**{k: _load(hints[k], v) for k, v in data.items()})
    if tp is bool:
        if not isinstance(data, bool):
            raise ValueError(f"expected a boolean, got {data!r}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValueError(f"expected an integer, got {data!r}")
        return data
    if tp is str:
        if not isinstance(data, str):
            raise ValueError(f"expected a string, got {data!r}")
        return data
    raise TypeError(f"cannot load {tp!r}")
