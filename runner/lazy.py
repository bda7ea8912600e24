"""A package face whose heavy names load when first used (PEP 562 module `__getattr__`).

The load face keeps Locust (and gevent's monkey-patching) out of a process until the swarm is
used; the targets face keeps boto3 out of a local run. Type checkers read the names from the
face's `if TYPE_CHECKING:` imports; at run time this finds them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `where` maps each lazy name to its module."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    return __getattr__
