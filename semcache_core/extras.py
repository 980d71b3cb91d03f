"""Optional dependencies: a clear ImportError naming the extra that provides a missing one."""

from __future__ import annotations

import importlib.util


def require(module: str, *, extra: str, what: str | None = None) -> None:
    """Raise ``ImportError`` naming ``pip install 'semcache[<extra>]'`` if ``module`` is absent."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        found = False
    if not found:
        raise ImportError(
            f"{what or 'this part of semcache'} needs the {module!r} package, which is not "
            f"installed; install it with: pip install 'semcache[{extra}]'",
            name=module,
        )
