"""The one error type the CLI turns into a clean message (exit code 1).

Data problems are not errors: they become per-record rejects with a reason. These exceptions
are for misconfiguration, missing dependencies or models, and "nothing at all could be read".
"""

from __future__ import annotations


class CtxdataError(Exception):
    """A user-facing error: the message says what went wrong and what to do instead."""


class ConfigError(CtxdataError, ValueError):
    """A bad option or combination of options."""


class MissingDependencyError(CtxdataError, ImportError):
    """An optional dependency is not installed; the message names the pip command."""


class ModelNotFoundError(CtxdataError, FileNotFoundError):
    """Model weights are not available offline; the message says what to download and where."""
