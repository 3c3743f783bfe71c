"""Is the SQLite file we write still the one we opened?

SQLite writes happily into a file that was unlinked (or replaced by another file under
its name) and reports every commit as a success; the data is then lost when the last
descriptor closes. `FileIdentity` keeps a descriptor of its own on the file opened and
compares it with what the path names now, before a write is acknowledged.

The descriptor must stay open as long as SQLite's connections are: closing any
descriptor of a file drops every POSIX lock this process holds on it (SQLite's too).
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa


class FileIdentity:
    """The database file of `engine` as opened now (None for a server database)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    @classmethod
    def of(cls, engine: sa.Engine) -> FileIdentity | None:
        if engine.dialect.name != "sqlite" or not engine.url.database:
            return None
        return cls(Path(engine.url.database).resolve())

    def problem(self) -> str | None:
        """Why the path no longer names the file opened, or None while it does."""
        if self._fd is None:
            return None
        opened = os.fstat(self._fd)
        if opened.st_nlink == 0:
            return f"the store database file {str(self.path)!r} was deleted"
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return f"the store database file {str(self.path)!r} was deleted"
        except OSError as error:
            return f"the store database file {str(self.path)!r} cannot be checked: {error}"
        if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
            return f"the store database file {str(self.path)!r} was replaced by another file"
        return None

    def close(self) -> None:
        """Call only after every connection to the file is closed (see above)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
