"""Run a callback right after a module is imported (a post-import hook).

The plugin is loaded on every ``import verl`` in every process, where it must stay
cheap: ``verl.workers.rollout.replica`` and the FSDP engine pull in seconds and hundreds of
MB of imports (docs/performance.md, "CPU settings") that most Ray processes never need. veRL's registries live in those
modules, so registration waits until the registry module itself is imported, in
whichever process that happens. Nothing in veRL is modified: the finder only
observes the import and calls back after the module has executed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType

Callback = Callable[[ModuleType], None]

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_pending: dict[str, list[Callback]] = {}


def _run(callback: Callback, module: ModuleType) -> None:
    """A failing registration must not break veRL's own import: log it loudly instead."""
    try:
        callback(module)
    except Exception:
        logger.warning("verl_rec: hook %r for %s failed", callback, module.__name__, exc_info=True)


class _Loader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the callbacks for the module."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        with _lock:
            callbacks = _pending.pop(module.__name__, [])
        for callback in callbacks:
            _run(callback, module)

    def __getattr__(self, name: str):  # get_source, get_code, ... for tracebacks and tools
        return getattr(self._inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loader of watched modules only; every other import is untouched."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        with _lock:
            if fullname not in _pending:
                return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


_finder = _Finder()


def when_imported(module_name: str, callback: Callback) -> None:
    """Call ``callback(module)`` once ``module_name`` is imported (now, if it already is)."""
    module = sys.modules.get(module_name)
    if module is not None:
        _run(callback, module)
        return
    with _lock:
        _pending.setdefault(module_name, []).append(callback)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
