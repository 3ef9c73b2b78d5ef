"""The editable app config (``GET /v1/config``) and governance rules (``GET /v1/rules``).

Each lives in a JSON file that a person (or a test) edits while the collector runs. The file is
re-read when its identity changes (mtime, size or inode: an editor that saves by renaming still
counts), and the ETag is a hash of the exact bytes served, so any edit changes it and clients that
compare ETags (see docs/wire.md) fetch the new config. While a file is half-written or invalid, the last
valid content keeps being served, so a typo never takes the config endpoint down.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CONFIG: dict[str, Any] = {
    "sample_rate": 100,
    "user_sample_rate": {},
    "company_sample_rate": {},
    "regex_config": [],
    "user_rules": {},
    "company_rules": {},
}
DEFAULT_RULES: list[Any] = []


def etag_of(content: bytes) -> str:
    """The ETag for some content: a content hash, so equal content always means an equal ETag."""
    return hashlib.sha256(content).hexdigest()[:32]


def _dump(value: Any) -> bytes:
    """Serialise JSON the way we write files: readable, stable, newline-terminated."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Snapshot:
    """What is served at one moment: the raw bytes, their parsed value and their ETag."""

    content: bytes
    value: Any
    etag: str


class ConfigUnavailable(Exception):
    """Raised when the file has never held valid content (nothing sensible to serve)."""


class JsonFileStore:
    """One JSON document backed by a file, re-read on change, with a content-hash ETag."""

    def __init__(self, path: str | os.PathLike[str], default: Any, expected_type: type) -> None:
        """Use ``path``, writing ``default`` there first when the file does not exist yet."""
        self.path = Path(path)
        self._expected_type = expected_type
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._snapshot: Snapshot | None = None
        self._error: str | None = None
        if not self.path.exists():
            self.write(default)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _validate(self, content: bytes) -> Any:
        value = json.loads(content.decode("utf-8"))
        if not isinstance(value, self._expected_type):
            raise ValueError(f"expected a JSON {'object' if self._expected_type is dict else 'array'}")
        return value

    def snapshot(self) -> Snapshot:
        """Current content; re-reads the file only when it changed since the last read."""
        with self._lock:
            stamp = self._file_stamp()
            if stamp is not None and stamp != self._stamp:
                try:
                    content = self.path.read_bytes()
                    value = self._validate(content)
                except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeError are ValueErrors
                    message = f"{self.path}: not valid, still serving the last valid content: {exc}"
                    if message != self._error:
                        print(f"moesif-collector: {message}", file=sys.stderr, flush=True)
                    self._error = message
                else:
                    self._snapshot = Snapshot(content, value, etag_of(content))
                    self._error = None
                self._stamp = stamp
            if self._snapshot is None:
                raise ConfigUnavailable(self._error or f"{self.path} is missing")
            return self._snapshot

    @property
    def error(self) -> str | None:
        """Why the file is currently not being served as written, if it is not."""
        self.snapshot_or_none()
        return self._error

    def snapshot_or_none(self) -> Snapshot | None:
        """Like :meth:`snapshot` but ``None`` instead of raising."""
        try:
            return self.snapshot()
        except ConfigUnavailable:
            return None

    def write(self, value: Any) -> Snapshot:
        """Replace the file atomically (write a temp file, then rename) and return what is now served."""
        content = _dump(value)
        self._validate(content)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=str(self.path.parent))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return self.snapshot()


def config_store(path: str | os.PathLike[str]) -> JsonFileStore:
    """The app config file (a JSON object, created with the default config when missing)."""
    return JsonFileStore(path, DEFAULT_CONFIG, dict)


def rules_store(path: str | os.PathLike[str]) -> JsonFileStore:
    """The governance rules file (a JSON array, created empty when missing)."""
    return JsonFileStore(path, DEFAULT_RULES, list)
