"""One error tree: every exception class Teich defines descends from ``TeichError``, so a user's
``except TeichError`` catches everything Teich raises on purpose."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import teich
from teich import TeichError


def test_every_exception_class_in_teich_is_a_teich_error() -> None:
    defined = set()
    for module_info in pkgutil.walk_packages(teich.__path__, "teich."):
        if module_info.name == "teich.__main__":
            continue
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("teich."):
                defined.add(value)
    assert len(defined) >= 8  # the tree in teich.errors and the few kept beside their code
    assert [cls.__qualname__ for cls in defined if not issubclass(cls, TeichError)] == []
