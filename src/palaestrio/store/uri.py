"""Store URIs, parsed without SQLAlchemy.

The executor and the command line only check a URI, mask its password and find where
its run logs go; SQLAlchemy (0.3-0.5 s of imports here) loads in the store process and
in the commands that read the store. `palaestrio.store.engine` builds its engine URL from
what `parse_uri` found, so both agree on what a store URI is.

The syntax is SQLAlchemy's: ``scheme://[user[:password]@][host][:port][/database][?query]``,
with user, password and database percent-decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from palaestrio.store.errors import StoreError

SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+pysqlite"})
POSTGRES_SCHEMES = frozenset(
    {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}
)

_SCHEME = re.compile(r"[\w+]+")
_NAMES = re.compile(
    r"(?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?"
    r"(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?",
    re.S,
)


@dataclass(frozen=True)
class StoreUri:
    scheme: str
    """As written (``postgres``, ``sqlite+pysqlite``, ...)."""
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str | None
    query: tuple[tuple[str, str], ...] = ()

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self.scheme in SQLITE_SCHEMES else "postgresql"

    def describe(self) -> str:
        """The URI with its password masked, the scheme as users write it."""
        text = self.scheme.partition("+")[0] + "://"
        if self.username is not None:
            text += self.username
            if self.password is not None:
                text += ":***"
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + self.database
        if self.query:
            text += "?" + "&".join(f"{key}={value}" for key, value in self.query)
        return text


def split_uri(uri: str) -> StoreUri:
    """The parts of any ``scheme://...`` URI; raises `StoreError` if it is none."""
    scheme, separator, rest = uri.partition("://")
    names = _NAMES.fullmatch(rest) if separator and _SCHEME.fullmatch(scheme) else None
    if names is None:
        raise StoreError(f"not a store URI: {uri!r} (expected scheme://...)")
    parts = names.groupdict()
    port: int | None = None
    if parts["port"]:
        try:
            port = int(parts["port"])
        except ValueError:
            raise StoreError(f"not a store URI: {uri!r} (port {parts['port']!r})") from None
    query = parts["query"]
    return StoreUri(
        scheme=scheme,
        username=None if parts["username"] is None else unquote(parts["username"]),
        password=None if parts["password"] is None else unquote(parts["password"]),
        host=parts["ipv4host"] or parts["ipv6host"],
        port=port,
        database=None if parts["database"] is None else unquote(parts["database"]),
        query=tuple(parse_qsl(query)) if query else (),
    )


def parse_uri(uri: str) -> StoreUri:
    """A store URI's parts; raises `StoreError` naming what is wrong."""
    parts = split_uri(uri)
    if parts.scheme in SQLITE_SCHEMES:
        if not parts.database or parts.database == ":memory:":
            raise StoreError(
                f"store URI {uri!r} names no database file; an in-memory SQLite database "
                "cannot be shared with the store service: use sqlite:///path/to/file.db"
            )
        return parts
    if parts.scheme in POSTGRES_SCHEMES:
        if not parts.database:
            raise StoreError(f"store URI {parts.describe()!r} names no database")
        return parts
    raise StoreError(
        f"unknown store URI scheme {parts.scheme!r} in {parts.describe()!r}: "
        "use sqlite:///path/to/file.db or postgresql://user@host/database"
    )


def describe(uri: str) -> str:
    """The URI with any password masked, for messages."""
    try:
        return split_uri(uri).describe()
    except StoreError:
        return "<unparsable URI>"
