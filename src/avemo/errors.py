"""One exception type per failure family.

Every message says what went wrong, where (file, line, key) and how to fix it; the CLI prints
the message without a traceback and exits non-zero.
"""

from __future__ import annotations


class AvemoError(Exception):
    """Base class: an error a user can act on."""


class ConfigError(AvemoError):
    """config.yaml (or an override) is invalid."""


class LabelFileError(AvemoError):
    """A MELD label CSV cannot be read."""


class ClipError(AvemoError):
    """A media clip cannot be decoded (usually turned into a QC row instead of raised)."""


class DownloadError(AvemoError):
    """The raw corpus cannot be fetched, verified or extracted."""


class DataStageError(AvemoError):
    """A stage's input (from the stage before it) is missing or malformed."""


class TrainingError(AvemoError):
    """Training cannot start or resume (bad checkpoint, empty split, unknown model, ...)."""


class ResultsDirError(AvemoError):
    """results_dir cannot be used: not creatable or writable, or held by another running run."""


class DiskFullError(AvemoError):
    """A write found no space on the disk holding the results (any stage)."""
