"""The settings handler: which backend each alias names, built lazily.

Settings have the shape of Django's ``TASKS``::

    configure({
        "default": {
            "BACKEND": "taskyard.backends.database.DatabaseBackend",
            "QUEUES": ["default", "emails"],          # [] means any queue
            "OPTIONS": {"URL": "sqlite:///taskyard.sqlite3"},
        },
    })

Where the settings come from: one precedence rule, for each of the two values (the settings
and the URL that replaces their ``default`` alias), the first that is given wins:

1. an explicit flag of the ``taskyard`` command line (``--settings MODULE``, ``--url URL``);
2. the environment (``TASKYARD_SETTINGS``: an importable module defining ``TASKS``;
   ``TASKYARD_URL``);
3. the code: ``configure(settings)`` / ``configure(settings_module=...)`` /
   ``configure(url=...)`` (calling it again replaces the configuration);
4. the default: the Database backend on ``./taskyard.sqlite3``.

So ``TASKYARD_URL=immediate: python app.py`` runs an app that calls ``configure(...)`` inline.
A URL names a backend for the ``default`` alias: ``immediate:``, ``dummy:``, ``threadpool:``,
``sqlite:///path``, ``postgresql://...``, ``redis://...``; query parameters become ``OPTIONS``
(``threadpool:?max_workers=4``).

Entries are checked when they are configured (unknown keys, unknown backend classes, bad
``OPTIONS``); backends are constructed on first use, and constructors do no I/O.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from taskyard.backends.base import Backend
from taskyard.exceptions import InvalidTaskBackend

logger = logging.getLogger("taskyard.config")

DEFAULT_ALIAS = "default"
DEFAULT_SQLITE_URL = "sqlite:///taskyard.sqlite3"

_SCHEME_BACKENDS = {
    "immediate": "taskyard.backends.immediate.ImmediateBackend",
    "dummy": "taskyard.backends.dummy.DummyBackend",
    "threadpool": "taskyard.backends.threadpool.ThreadPoolBackend",
    "sqlite": "taskyard.backends.database.DatabaseBackend",
    "postgres": "taskyard.backends.database.DatabaseBackend",
    "postgresql": "taskyard.backends.database.DatabaseBackend",
    "redis": "taskyard.backends.redis.RedisBackend",
    "rediss": "taskyard.backends.redis.RedisBackend",
    "redis+sentinel": "taskyard.backends.redis.RedisBackend",
    "rediss+sentinel": "taskyard.backends.redis.RedisBackend",
}
# Backends whose OPTIONS carry the URL itself (the others take only query parameters).
_URL_OPTION_SCHEMES = {
    "sqlite",
    "postgres",
    "postgresql",
    "redis",
    "rediss",
    "redis+sentinel",
    "rediss+sentinel",
}


def parse_url(url: str) -> dict[str, Any]:
    """Turn a backend URL into a settings entry (``BACKEND``, ``QUEUES``, ``OPTIONS``)."""
    if not isinstance(url, str) or ":" not in url:
        raise InvalidTaskBackend(
            f"backend URL {url!r} has no scheme; use one of "
            f"{', '.join(s + ':' for s in sorted(_SCHEME_BACKENDS))}"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    path = _SCHEME_BACKENDS.get(scheme)
    if path is None:
        raise InvalidTaskBackend(
            f"backend URL {url!r}: unknown scheme {scheme!r}; known schemes are "
            f"{', '.join(sorted(_SCHEME_BACKENDS))}"
        )
    entry: dict[str, Any] = {"BACKEND": path, "OPTIONS": {}}
    query = parse_qsl(parts.query, keep_blank_values=True)
    backend_cls = _import_backend(DEFAULT_ALIAS, path)
    schema = backend_cls.options_schema
    for key, value in query:
        if key.lower() == "queues":
            entry["QUEUES"] = [q for q in value.split(",") if q] if value != "*" else []
            continue
        name = key.upper()
        spec = schema.get(name)
        entry["OPTIONS"][name] = spec.coerce(value) if spec is not None else value
    if scheme in _URL_OPTION_SCHEMES:
        entry["OPTIONS"]["URL"] = url.split("?", 1)[0]
    elif parts.netloc or parts.path:
        raise InvalidTaskBackend(
            f"backend URL {url!r}: {scheme}: takes no host or path, only ?options"
        )
    return entry


def _import_backend(alias: str, path: object) -> type[Backend]:
    if not isinstance(path, str) or "." not in path:
        raise InvalidTaskBackend(
            f"backend {alias!r}: BACKEND must be a dotted path to a backend class, got {path!r}"
        )
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidTaskBackend(f"backend {alias!r}: cannot import {path!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise InvalidTaskBackend(
            f"backend {alias!r}: {path!r} is not a taskyard backend class "
            "(a subclass of taskyard.backends.base.Backend)"
        )
    return cls


def _settings_from_module(module_name: str) -> Mapping[str, Any]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidTaskBackend(f"cannot import settings module {module_name!r}: {exc}") from exc
    tasks = getattr(module, "TASKS", None)
    if not isinstance(tasks, Mapping):
        raise InvalidTaskBackend(f"settings module {module_name!r} does not define a TASKS dict")
    return tasks


class BackendHandler:
    """Maps aliases to backends. ``backends["default"]`` builds the backend on first use."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[str, tuple[type[Backend], dict[str, Any]]] | None = None
        self._built: dict[str, Backend] = {}
        self.settings_source = "default"
        self.settings_module: str | None = None
        #: called instead of reading the environment when nothing is configured yet (the
        #: Django integration sets it to configure from ``settings.TASKS``)
        self.configure_default: Callable[[], None] | None = None

    # -- configuring ----------------------------------------------------------------------------

    def configure(
        self,
        settings: Mapping[str, Any] | None = None,
        *,
        url: str | None = None,
        settings_module: str | None = None,
        require_default: bool = True,
        environment: bool = False,
    ) -> None:
        """Replace the configuration (see the module docstring). Backends built before are
        closed.

        ``environment=True`` (what ``taskyard.configure()`` passes) applies the precedence rule:
        ``TASKYARD_SETTINGS`` wins over ``settings``/``settings_module`` and ``TASKYARD_URL``
        over ``url``. With ``environment=False`` the arguments are used as given, except that
        with none at all the environment is read (the lazy default). ``require_default=False``
        (for integrations whose default alias is another library's) accepts settings without a
        ``default`` alias."""
        source = "configure()"
        url_source = "configure(url=...)"
        if environment or (settings is None and settings_module is None and url is None):
            env_module = os.environ.get("TASKYARD_SETTINGS") or None
            env_url = os.environ.get("TASKYARD_URL") or None
            if env_module is not None:
                if settings is not None or settings_module is not None:
                    logger.info(
                        "TASKYARD_SETTINGS=%s replaces the settings given in code", env_module
                    )
                settings, settings_module = None, env_module
                source = f"settings module {env_module} (TASKYARD_SETTINGS)"
            if env_url is not None:
                if url is not None or settings is not None:
                    logger.info(
                        "TASKYARD_URL=%s replaces the default alias given in code", _redact(env_url)
                    )
                url, url_source = env_url, "TASKYARD_URL"
        module_name = settings_module
        if settings is None:
            if module_name is not None:
                settings = _settings_from_module(module_name)
                if not source.startswith("settings module"):
                    source = f"settings module {module_name}"
            elif url is not None:
                settings = {DEFAULT_ALIAS: parse_url(url)}
                source = f"URL {_redact(url)}" + (
                    f" ({url_source})" if url_source == "TASKYARD_URL" else ""
                )
                url = None
            else:
                settings = {DEFAULT_ALIAS: parse_url(DEFAULT_SQLITE_URL)}
                source = "default (SQLite file taskyard.sqlite3)"
        entries = self._check(settings, require_default)
        if url is not None:
            entry = parse_url(url)
            entries[DEFAULT_ALIAS] = self._check_entry(DEFAULT_ALIAS, entry)
            source += f" + URL {_redact(url)}" + (
                f" ({url_source})" if url_source == "TASKYARD_URL" else ""
            )
        with self._lock:
            old = self._built
            self._entries = entries
            self._built = {}
            self.settings_source = source
            self.settings_module = module_name
        for backend in old.values():
            backend.close()

    def _check(
        self, settings: Mapping[str, Any], require_default: bool = True
    ) -> dict[str, tuple[type[Backend], dict[str, Any]]]:
        if not isinstance(settings, Mapping):
            raise InvalidTaskBackend(
                f"task settings must be a dict of alias -> entry, got {type(settings).__name__}"
            )
        if require_default and DEFAULT_ALIAS not in settings:
            raise InvalidTaskBackend(
                f"task settings need a {DEFAULT_ALIAS!r} alias; got {sorted(settings)}"
            )
        return {alias: self._check_entry(alias, entry) for alias, entry in settings.items()}

    def _check_entry(self, alias: object, entry: object) -> tuple[type[Backend], dict[str, Any]]:
        if not isinstance(alias, str) or not alias:
            raise InvalidTaskBackend(f"backend aliases must be non-empty strings, got {alias!r}")
        if not isinstance(entry, Mapping):
            raise InvalidTaskBackend(
                f"backend {alias!r}: entry must be a dict with BACKEND, QUEUES, OPTIONS; "
                f"got {entry!r}"
            )
        if "BACKEND" not in entry:
            raise InvalidTaskBackend(f"backend {alias!r}: entry has no BACKEND")
        cls = _import_backend(alias, entry["BACKEND"])
        params = dict(entry)
        checked = cls.check_params(alias, params)
        params["QUEUES"] = checked["QUEUES"]
        params["OPTIONS"] = checked["OPTIONS"]
        return cls, params

    # -- using ----------------------------------------------------------------------------------

    def __getitem__(self, alias: str) -> Backend:
        built = self._built.get(alias)
        if built is not None:
            return built
        with self._lock:
            if self._entries is None:
                self._configure_lazily()
            assert self._entries is not None
            built = self._built.get(alias)
            if built is not None:
                return built
            try:
                cls, params = self._entries[alias]
            except KeyError:
                raise InvalidTaskBackend(
                    f"no task backend with alias {alias!r}; configured aliases: "
                    f"{', '.join(sorted(self._entries))}"
                ) from None
            built = cls(alias, params)
            self._built[alias] = built
            return built

    def __contains__(self, alias: object) -> bool:
        return alias in self.aliases()

    def _configure_lazily(self) -> None:
        if self.configure_default is not None:
            self.configure_default()
        else:
            self.configure()

    def aliases(self) -> list[str]:
        with self._lock:
            if self._entries is None:
                self._configure_lazily()
            assert self._entries is not None
            return list(self._entries)

    def all(self) -> list[Backend]:
        """Every configured backend (building those not built yet)."""
        return [self[alias] for alias in self.aliases()]

    def settings(self) -> dict[str, dict[str, Any]]:
        """The checked settings, with defaults filled in."""
        self.aliases()
        assert self._entries is not None
        return {alias: dict(params) for alias, (_, params) in self._entries.items()}

    def close_all(self) -> None:
        with self._lock:
            built = list(self._built.values())
        for backend in built:
            backend.close()

    def reset(self) -> None:
        """Forget the configuration; the next use reads the environment again."""
        self.close_all()
        with self._lock:
            self._entries = None
            self._built = {}


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


#: The process-wide handler. ``task_backends["default"]`` is the default backend (Django's
#: name for its handler; exported from ``taskyard``). ``backends`` is the same object, kept for
#: code inside taskyard.
task_backends = BackendHandler()
backends = task_backends


def configure(
    settings: Mapping[str, Any] | None = None,
    *,
    url: str | None = None,
    settings_module: str | None = None,
) -> None:
    """Configure taskyard's backends for this process (replacing any earlier configuration).

    ``settings`` is a dict shaped like Django's ``TASKS``; ``url`` replaces the default alias
    with a backend URL; ``settings_module`` names a module defining ``TASKS``. The environment
    wins over all three (``TASKYARD_SETTINGS`` over the settings, ``TASKYARD_URL`` over the
    default alias), so one variable switches backends per environment without touching code.
    """
    backends.configure(settings, url=url, settings_module=settings_module, environment=True)


@contextmanager
def override(
    settings: Mapping[str, Any] | None = None, *, url: str | None = None
) -> Iterator[BackendHandler]:
    """Use other backends inside a ``with`` block (in tests), then restore the previous ones."""
    with backends._lock:
        saved = (backends._entries, backends._built, backends.settings_source)
        backends._entries = None
        backends._built = {}
    try:
        backends.configure(settings, url=url)
        yield backends
    finally:
        backends.close_all()
        with backends._lock:
            backends._entries, backends._built, backends.settings_source = saved
