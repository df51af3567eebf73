"""Where the line keeps its results log and image archive by default: one definition, used by
``run``, ``serve``, ``monitor``, ``review`` and ``retrain``.

The archive defaults to ``images/`` beside a SQLite results log, so a service started from
another folder with ``--db sqlite:////plant/line1/results.db`` finds the images the line wrote.
Relative SQLite paths are made absolute (against the working folder) before anything opens
them, so what is printed at start-up is where the data really is.

>>> absolute_db_url("sqlite:////plant/results.db")
'sqlite:////plant/results.db'
>>> default_archive_for("sqlite:////plant/results.db").as_posix()
'/plant/images'
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DB_URL = "sqlite:///runs/line/results.db"
DEFAULT_ARCHIVE = Path("runs/line/images")  # for databases that are not a local SQLite file


def _sqlite_file(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # ResultStore gives the clear error
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def absolute_db_url(url: str) -> str:
    """``url`` with a relative SQLite file path made absolute; any other URL unchanged."""
    path = _sqlite_file(url)
    if path is None or path.is_absolute():
        return url
    return make_url(url).set(database=str(path.resolve())).render_as_string(hide_password=False)


def default_archive_for(db_url: str) -> Path:
    """``images/`` beside a SQLite results log, else ``runs/line/images``; always absolute."""
    path = _sqlite_file(absolute_db_url(db_url))
    return (path.parent / "images") if path is not None else DEFAULT_ARCHIVE.resolve()


def describe_db(url: str) -> str:
    """The URL for a start-up line: absolute for SQLite, the password hidden otherwise."""
    try:
        return make_url(absolute_db_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return url
