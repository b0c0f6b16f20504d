"""Registries of extensions by name: trace formats, generation providers, sandbox backends.

An entry is the value of one module-level name (``FORMAT``, ``PROVIDER``, ``BACKEND``) in the
registry's modules, or in any module of its packages; the registry imports them all on first use,
so adding an entry is adding a module. :meth:`Registry.registered` adds an entry for the length of
a block (a test, or a plugin that drives Teich from Python), and takes it out again afterwards.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Generic, Protocol, TypeVar


class Named(Protocol):
    """What every entry has: the name it is registered under."""

    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=Named)


def _by_name(entry: Named) -> str:
    return entry.name


class Registry(Generic[E]):
    """The entries that ``modules`` (and the modules of those that are packages) define as ``attribute``,
    by name, listed in ``order``."""

    def __init__(self, attribute: str, modules: tuple[str, ...], order: Callable[[E], Any] = _by_name) -> None:
        self.attribute = attribute
        self.modules = modules
        self._order = order
        self._added: dict[str, E] = {}

    @cached_property
    def _found(self) -> dict[str, E]:
        """The entries the modules define, imported on first use."""
        found: dict[str, E] = {}
        for name in self.modules:
            module = importlib.import_module(name)
            inner = pkgutil.iter_modules(getattr(module, "__path__", []), f"{name}.")
            for each in (module, *(importlib.import_module(info.name) for info in inner)):
                entry = getattr(each, self.attribute, None)
                if entry is not None:
                    found[entry.name] = entry
        return found

    @cached_property
    def _entries(self) -> tuple[E, ...]:
        return tuple(sorted({**self._found, **self._added}.values(), key=self._order))

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries)

    def __getitem__(self, name: str) -> E:
        """The entry called ``name``; :class:`KeyError` when none is."""
        for entry in self._entries:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def names(self) -> tuple[str, ...]:
        """Every entry's name, in order."""
        return tuple(entry.name for entry in self._entries)

    @contextmanager
    def registered(self, entry: E) -> Iterator[E]:
        """``entry`` registered (in place of any of the same name) while the block runs."""
        if entry.name in self._added:
            raise ValueError(f"{entry.name!r} is already registered for a block")
        self._added[entry.name] = entry
        self._forget("_entries")
        try:
            yield entry
        finally:
            del self._added[entry.name]
            self._forget("_entries")

    def refresh(self) -> None:
        """Import the modules again on next use: for a module added to a package while running."""
        self._forget("_found", "_entries")

    def _forget(self, *cached: str) -> None:
        for name in cached:
            self.__dict__.pop(name, None)
