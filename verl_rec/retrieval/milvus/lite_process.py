"""Run the Milvus Lite engine (the C++ Milvus core shipped in the milvus-lite 2.5 wheel) as a
child process, on a unix socket (embedded) or a TCP port (a separate server others reach by URI).

We start the engine binary ourselves rather than through ``import milvus_lite``: that package's
``__init__`` imports ``pkg_resources``, which setuptools >= 81 no longer ships. The binary takes
``<db file> <address> <log level> [<lock file>]``; given a lock file it exits when its owner
releases the lock; on Linux the child is also sent SIGTERM when the thread that started it
dies (``PR_SET_PDEATHSIG``: also for the TCP server, and when the owner is SIGKILLed), so the
engine never outlives its owner. Start it from a thread that lives as long as the engine.

The death signal is set by a small launcher (``python -c``, below) that then execs the engine,
not by a ``preexec_fn``. With a ``preexec_fn`` a start died of SIGABRT now and then ("epoll_wait
error: Bad file descriptor", gRPC's message), in processes that hold a pymilvus (gRPC) client;
the likely cause (not proven: the crash is rare) is that a ``preexec_fn`` makes Python fork
instead of vfork, the fork runs gRPC's fork handlers, and ``close_fds`` then closes the file
descriptor of the poller they restarted in the child. A start killed
by a signal is still tried again (``start_attempts``), on a fresh socket, and logged; an engine
that exits with an error code is not retried: that is a bad database or address.

Run a separate server: ``python -m verl_rec.retrieval.milvus.lite_process --db DIR/milvus.db --port 19530``.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verl_rec.retrieval.index_metadata import RetrievalIndexError

DB_FILE = "milvus.db"
START_ATTEMPTS = 3
log = logging.getLogger(__name__)
_DB_NAME = re.compile(r"^[a-zA-Z0-9.\-_]{1,35}$")  # what the engine accepts as a db file name


class MilvusLiteError(RetrievalIndexError):
    """The embedded engine cannot start over an index folder; the message says what to do."""


def lite_binary() -> Path:
    """The engine binary inside the installed milvus-lite wheel (found without importing it)."""
    spec = importlib.util.find_spec("milvus_lite")
    if spec is None or not spec.submodule_search_locations:
        raise MilvusLiteError("milvus-lite is not installed; pip install 'milvus-lite==2.5.1' "
                              "(or point index_path at a Milvus server URI)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "lib" / "milvus"
    if not binary.is_file():
        raise MilvusLiteError(f"milvus-lite is installed but has no engine binary at {binary}; reinstall "
                              "milvus-lite==2.5.1 (a Linux/macOS wheel)")
    return binary


def _engine_env(binary: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{binary.parent}:{env.get('LD_LIBRARY_PATH', '')}"
    return env


#: run as ``python -c LAUNCHER <owner pid> <engine's LD_LIBRARY_PATH> <engine> <args...>``: be sent
#: SIGTERM when the owner (thread) dies, even by SIGKILL (PR_SET_PDEATHSIG, kept across exec),
#: then become the engine
LAUNCHER = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("the owner of the Milvus Lite engine exited before it started")
os.execve(sys.argv[3], sys.argv[3:], dict(os.environ, LD_LIBRARY_PATH=sys.argv[2]))
"""


def _launch(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The engine's command line and environment: through :data:`LAUNCHER` on Linux, which puts
    the wheel's libraries on the engine's library path (not on the launcher's: they include a
    libm that Python's own library cannot load); elsewhere the lock file ends the engine."""
    engine_env = _engine_env(Path(args[0]))
    if sys.platform != "linux":
        return args, engine_env
    return ([sys.executable, "-I", "-S", "-c", LAUNCHER, str(os.getpid()), engine_env["LD_LIBRARY_PATH"], *args],
            dict(os.environ))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiteProcess:
    """One Milvus Lite engine over ``db_file``, owned by this object: ``uri`` is what a
    ``MilvusClient`` connects to; :meth:`stop` (or this process' exit) ends the engine."""

    def __init__(self, db_file: str | Path, port: int | None = None, log_level: str = "ERROR",
                 start_timeout: float = 60.0, start_attempts: int = START_ATTEMPTS) -> None:
        self.db_file = Path(db_file).absolute()
        if not _DB_NAME.match(self.db_file.name):
            raise MilvusLiteError(f"Milvus Lite db file name {self.db_file.name!r} must match {_DB_NAME.pattern}")
        if not self.db_file.parent.is_dir():
            raise MilvusLiteError(f"Milvus Lite folder {self.db_file.parent} does not exist; build the index "
                                  "with python -m verl_rec.data_preprocess.build_index --backend milvus")
        self._binary = lite_binary()
        self._port, self._log_level = port, log_level
        self._process: subprocess.Popen | None = None
        self._socket: Path | None = None
        self._lock_path = self.db_file.parent / f".{self.db_file.name}.lock"
        self._lock = open(self._lock_path, "a")  # noqa: SIM115  (held for the engine's lifetime)
        try:
            fcntl.lockf(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise MilvusLiteError(f"Milvus Lite database {self.db_file} is open in another process (one process "
                                  "owns an embedded engine); stop it, or serve the database as a separate server "
                                  "(python -m verl_rec.retrieval.milvus.lite_process) and use its URI") from None
        self.start_retries, attempts = 0, max(1, start_attempts)
        for attempt in range(1, attempts + 1):
            self._spawn()
            crash = self._wait_ready(start_timeout)
            if crash is None:
                return
            signalled = self._process.returncode < 0
            if not signalled or attempt == attempts:
                self.stop()
                tried = f" ({attempt} starts)" if attempt > 1 else ""
                raise MilvusLiteError(f"Milvus Lite engine over {self.db_file} exited at start{tried} "
                                      f"(code {self._process.returncode}): {crash}")
            log.warning("Milvus Lite engine over %s was killed at start (code %s): %s; starting it again "
                        "(%d of %d)", self.db_file, self._process.returncode, crash, attempt + 1, attempts)
            self.start_retries += 1
            self._process.stderr.close()
            self._remove_socket()

    def _spawn(self) -> None:
        """Start the engine binary on a fresh unix socket, or on the TCP port."""
        if self._port is None:
            self._socket = Path(tempfile.mkdtemp(prefix="milvus-lite-")) / "engine.sock"
            self.uri = f"unix:{self._socket}"
            args = [str(self._binary), str(self.db_file), self.uri, self._log_level, str(self._lock_path)]
        else:
            self.uri = f"http://127.0.0.1:{self._port}"
            args = [str(self._binary), str(self.db_file), f"127.0.0.1:{self._port}", self._log_level]
        command, env = _launch(args)
        self._process = subprocess.Popen(command, env=env, cwd=str(self.db_file.parent),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)

    def _ready(self) -> bool:
        if self._socket is not None:
            return self._socket.exists()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", int(self.uri.rsplit(":", 1)[1]))) == 0

    def _wait_ready(self, timeout: float) -> str | None:
        """None once the engine listens; the end of its stderr if it exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = (self._process.stderr.read() or b"").decode(errors="replace")[-2000:]
                return err.strip() or "no output"
            if self._ready():
                return None
            time.sleep(0.05)
        self.stop()
        raise MilvusLiteError(f"Milvus Lite engine over {self.db_file} did not listen within {timeout:.0f}s")

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def running(self) -> bool:
        """Whether the engine process is still alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """End the engine and release the database. Safe to call twice."""
        if self._lock is not None and not self._lock.closed:
            fcntl.lockf(self._lock, fcntl.LOCK_UN)
            self._lock.close()
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._remove_socket()
        self._lock_path.unlink(missing_ok=True)

    def _remove_socket(self) -> None:
        if self._socket is not None:
            self._socket.unlink(missing_ok=True)
            try:
                self._socket.parent.rmdir()
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a Milvus Lite database on a TCP port until interrupted.")
    parser.add_argument("--db", required=True, help=f"database file (an index folder's {DB_FILE}, or a new file)")
    parser.add_argument("--port", type=int, default=19530)
    args = parser.parse_args(argv)
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    engine = LiteProcess(args.db, port=args.port)
    print(f"Milvus Lite serving {engine.db_file} at {engine.uri} (pid {engine.pid})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        engine._process.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
