"""``index_path`` -> a connected ``MilvusClient``: a URI reaches a Milvus server or cluster, a
local folder starts the embedded engine over its ``milvus.db`` (owned by the caller).

Credentials never come from a recipe: ``token_env`` / ``user_env`` + ``password_env`` name the
environment variables that hold them.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verl_rec.retrieval.base import is_engine_uri
from verl_rec.retrieval.index_metadata import IndexNotFoundError, RetrievalIndexError
from verl_rec.retrieval.milvus.lite_process import DB_FILE, LiteProcess

logger = logging.getLogger(__name__)


class MilvusConnectionError(RetrievalIndexError):
    """The Milvus engine at an index_path cannot be reached; the message names it and says what to do."""


@dataclass(frozen=True)
class Credentials:
    """Names of the environment variables that hold the engine's credentials (not the values)."""

    token_env: str | None = None
    user_env: str | None = None
    password_env: str | None = None

    def resolve(self) -> dict[str, str]:
        """The client keyword arguments, read from the environment; a named variable that is
        unset fails naming it."""
        out = {}
        for key, name in (("token", self.token_env), ("user", self.user_env), ("password", self.password_env)):
            if not name:
                continue
            value = os.environ.get(name)
            if value is None:
                raise MilvusConnectionError(f"the Milvus {key} is read from environment variable {name}, which is "
                                            f"not set in this process; export {name} on every node (Ray workers "
                                            "inherit the environment of ray start)")
            out[key] = value
        return out


def local_db_file(index_path: str | Path) -> Path:
    """The embedded engine's database file inside a local Milvus index folder."""
    return Path(index_path) / DB_FILE


@dataclass
class Connection:
    """A client, and the embedded engine behind it when this process started one."""

    client: Any
    where: str  # the URI as given, or the local folder: what messages name
    engine: LiteProcess | None = None

    def close(self) -> None:
        """Close the client, then end the embedded engine. Safe to call twice."""
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001  (closing a dead channel must not mask the real error)
                logger.debug("closing the Milvus client of %s failed", self.where, exc_info=True)
            self.client = None
        if self.engine is not None:
            self.engine.stop()
            self.engine = None


def connect(index_path: str | Path, credentials: Credentials | Mapping[str, Any] | None = None,
            timeout: float = 10.0, create: bool = False) -> Connection:
    """Connect to the engine ``index_path`` names; unreachable or missing fails naming it.

    ``create`` lets a builder start an embedded engine in a folder that has no database yet.
    """
    from pymilvus import MilvusClient

    creds = credentials if isinstance(credentials, Credentials) else Credentials(**dict(credentials or {}))
    keys = creds.resolve()
    where = str(index_path)
    engine = None
    if is_engine_uri(index_path):
        uri = where
    else:
        db_file = local_db_file(index_path)
        if not create and not db_file.is_file():
            raise IndexNotFoundError(f"no Milvus Lite database at {db_file}; build it with python -m "
                                     "verl_rec.data_preprocess.build_index --backend milvus --index "
                                     f"{index_path}, or set index_path to a Milvus server URI (http://host:19530)")
        db_file.parent.mkdir(parents=True, exist_ok=True)
        engine = LiteProcess(db_file)
        uri = engine.uri
    try:
        # an alias of its own: pymilvus shares one connection per URI, and closing one client
        # (a retriever refused at start) would cut every other client of that engine off
        client = MilvusClient(uri=uri, timeout=timeout, alias=f"verl_rec-{uuid.uuid4().hex}", **keys)
    except Exception as exc:  # noqa: BLE001  (pymilvus raises its own and grpc's errors here)
        if engine is not None:
            engine.stop()
        raise MilvusConnectionError(f"cannot reach the Milvus engine at {where} ({type(exc).__name__}: {exc}); "
                                    "start it (python -m verl_rec.retrieval.milvus.lite_process --db ... --port ... "
                                    "for a local one), check the host and port, and the credentials named by "
                                    "token_env / user_env / password_env") from None
    return Connection(client=client, where=where, engine=engine)


__all__ = ["Connection", "Credentials", "MilvusConnectionError", "connect", "local_db_file"]
