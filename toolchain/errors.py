"""One exception root. Each subclass carries the exit code of its kind.

Every message is one line that names the bad thing and says what to do; the
task boundary (toolchain.tasks.base) is the one place that catches them.
"""

from __future__ import annotations

from pathlib import Path


class ToolchainError(Exception):
    """Root of every error the toolkit reports to a user."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class UsageError(ToolchainError):
    """A bad argument on the command line (unknown target, profile, ...)."""

    exit_code = 2


class ConfigError(ToolchainError):
    """A data or config file is malformed or has unknown or wrong-typed keys."""

    exit_code = 3


class ProjectError(ToolchainError):
    """The Rust project cannot be used (no manifest, no binary target...)."""

    exit_code = 4


class MissingToolError(ToolchainError):
    """A tool a step needs is not installed; the hint says how to get it."""

    exit_code = 5


class BuildError(ToolchainError):
    """cargo (or the runner around it) failed."""

    exit_code = 6


class VerificationError(ToolchainError):
    """A built binary breaks the target's rules (wrong architecture...)."""

    exit_code = 7


class InspectionError(ToolchainError):
    """A file could not be parsed as an executable."""

    exit_code = 8


class PackagingError(ToolchainError):
    """An archive or checksum could not be written."""

    exit_code = 9


class SizeRegressionError(ToolchainError):
    """A binary or archive grew past the configured threshold."""

    exit_code = 10


class ReleaseCheckError(ToolchainError):
    """A release folder is incomplete or a file does not match its record."""

    exit_code = 12


class SignatureError(ToolchainError):
    """A signature or key is wrong, missing or malformed."""

    exit_code = 11


class UpdateError(ToolchainError):
    """The update was refused or failed (and was rolled back)."""

    exit_code = 13


class GitHubError(ToolchainError):
    """GitHub refused a request or could not be reached."""

    exit_code = 14


class PublishError(ToolchainError):
    """A publish step failed; re-running finishes the job."""

    exit_code = 15


class RollbackValidationError(ToolchainError):
    """A release's rollback validation failed, or publish found none covering it."""

    exit_code = 16


class AuditError(ToolchainError):
    """A published release failed the audit (the table/JSON says which check)."""

    exit_code = 17


class NotaryError(ToolchainError):
    """Apple's notary service refused, or could not be reached for, a submission."""

    exit_code = 18


def require_file(path: Path, error: type[ToolchainError], message: str, *, hint: str) -> Path:
    """`path` if it is a file; else `error(message)`, with {path} and {what} ("a folder" or
    "missing") filled in: the one wording of that check for settings and arguments alike."""
    if not path.is_file():
        raise error(message.format(path=path, what="a folder" if path.is_dir() else "missing"), hint=hint)
    return path


# Exit codes that are not an error class of their own.
SOME_TARGETS_FAILED = 1  # build --keep-going: at least one target failed (the JSON/table says which)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
BROKEN_PIPE = 141  # the reader went away (128 + SIGPIPE), as `cat` exits
