"""Exceptions raised at facelm's boundaries.

Every error names the item it is about and says what the user can do, so a batch
can record it verbatim and a CLI can print it as one line.
"""
from __future__ import annotations


class FaceLMError(Exception):
    """Base class for all errors facelm raises on purpose."""

    def __init__(self, message: str, *, item: str | None = None, hint: str | None = None):
        self.message = message  # without the item and hint, for callers that show them apart
        self.item = item
        self.hint = hint
        text = f"{item}: {message}" if item else message
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


class ImageLoadError(FaceLMError):
    """The file is missing, empty, truncated, or not an image we can decode."""


class ImageTooLargeError(FaceLMError):
    """The image has more pixels than the configured limit and cannot be reduced on decode."""


class NoFaceError(FaceLMError):
    """No face was detected in the image."""


class ModelNotInstalledError(FaceLMError):
    """A package that carries model weights is not installed."""


class InputFormatError(FaceLMError):
    """A CSV or JSONL input has missing columns or values of the wrong type."""


class ItemError(FaceLMError):
    """One item's failure, carried back from a worker process: the message (item and hint
    included) and `kind`, the original exception's class name. Exceptions with keyword-only
    arguments (every FaceLMError) lose those on the way through a process pool; this one does not."""

    def __init__(self, message: str, kind: str = "FaceLMError"):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple:
        return (ItemError, (self.message, self.kind))


class GalleryError(FaceLMError):
    """A search gallery is missing, unreadable, or was built with other models or fusion weights."""
