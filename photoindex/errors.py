"""The one error hierarchy of photoindex: a message saying what went wrong and a hint saying what to do."""

from __future__ import annotations


class PhotoindexError(Exception):
    """An expected failure the user can act on; the CLI prints `error: message` and `hint: hint`."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(PhotoindexError):
    """The configuration file or an environment override is invalid."""


class ModelError(PhotoindexError):
    """A model bundle is unknown, incomplete, corrupt or cannot be run."""


class DownloadError(ModelError):
    """A bundle file could not be fetched or failed its checksum."""


class RuntimeUnavailable(ModelError):
    """The requested inference runtime (for example the NPU) cannot be used here."""


class ImageError(PhotoindexError):
    """A photo could not be decoded; `reason` is a short machine-readable cause."""

    def __init__(self, path: object, reason: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}", hint)
        self.path = str(path)
        self.reason = reason


class CatalogError(PhotoindexError):
    """The SQLite catalog cannot be opened, migrated or written."""


class LockedError(PhotoindexError):
    """Another photoindex process holds the single-writer lock; `holder` describes it (pid, purpose, since)."""

    exit_code = 3
    holder: str = "another process"


class VectorIndexError(PhotoindexError):
    """The vector index file cannot be used (callers normally rebuild it from SQLite)."""
