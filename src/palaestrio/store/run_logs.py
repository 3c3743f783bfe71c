"""Where each run instance's full governor output is kept (`runs show RUN --log`).

The console gets a governor's output rate-limited and cut to 16 KiB lines; the whole
of it goes to one file per run instance, ``<instance uid>.log``, in:

* the directory given as ``run_log_dir`` (runtime configuration), for any store; else
* for SQLite, ``<database file>.logs/`` next to the database;
* for PostgreSQL, ``$XDG_STATE_HOME/palaestrio/logs/<host>_<port>_<database>/``
  (``~/.local/state/...`` without XDG_STATE_HOME) on the executor's machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from palaestrio.store.uri import parse_uri

LOG_SUFFIX = ".log"


def run_log_dir(store_uri: str, configured: str | os.PathLike[str] | None = None) -> Path:
    """The (absolute) directory holding the run logs of the store at `store_uri`."""
    if configured is not None:
        return Path(configured).expanduser().absolute()
    url = parse_uri(store_uri)
    assert url.database  # parse_uri refuses a store without one
    if url.backend == "sqlite":
        database = Path(url.database).absolute()
        return database.with_name(database.name + ".logs")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    place = f"{url.host or 'localhost'}_{url.port or 5432}_{url.database}"
    return Path(state) / "palaestrio" / "logs" / re.sub(r"[^A-Za-z0-9._-]", "_", place)


def run_log_path(
    store_uri: str, instance_uid: str, configured: str | os.PathLike[str] | None = None
) -> Path:
    """The log file of run instance `instance_uid` (which may not exist)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", instance_uid):
        raise ValueError(f"not an instance uid: {instance_uid!r}")
    return run_log_dir(store_uri, configured) / f"{instance_uid}{LOG_SUFFIX}"
