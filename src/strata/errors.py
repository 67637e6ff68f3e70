"""The one tree of errors the library raises.

Every error's message is a single line that names the input and the reason, so the CLI can print
it as is. Nothing below the CLI prints, exits, or raises anything else on bad input.
"""

from __future__ import annotations


class StrataError(Exception):
    """Base of every error strata raises on purpose. ``str(err)`` is the user-facing line."""

    exit_code = 1


class InvalidArgument(StrataError):
    """A value given by the user does not parse or is out of range."""


class InvalidDigest(InvalidArgument):
    """A digest string is not ``algorithm:encoded`` with a valid encoding for the algorithm."""


class InvalidReference(InvalidArgument):
    """An image reference does not follow the Docker reference grammar."""


class NotFound(StrataError):
    """Something named by the user does not exist."""


class ImageNotFound(NotFound):
    """No image has this name or ID."""


class BlobNotFound(NotFound):
    """The content store has no blob with this digest."""


class Conflict(StrataError):
    """The operation would break an invariant (a name in use, an image in use, ...)."""


class FormatError(StrataError):
    """A document, archive or stream is malformed: bad JSON, wrong fields, bad tar."""


class UnsupportedMediaType(FormatError):
    """A media type strata does not know how to handle."""


class TooLarge(FormatError):
    """An input is over its size bound (manifests, configs, decompressed layers)."""


class UnsafePath(FormatError):
    """An archive or layer member would reach outside its target (``..``, absolute, links)."""


class ContentError(StrataError):
    """Bytes do not match what was promised for them."""


class DigestMismatch(ContentError):
    """Content hashed to a different digest than expected."""


class SizeMismatch(ContentError):
    """Content has a different size than expected."""


class Locked(StrataError):
    """Another process holds the resource (an ingest being written, the store being collected)."""


class ToolError(StrataError):
    """An external program strata relies on is missing or failed."""


class StoreError(StrataError):
    """The store on disk is unusable: wrong schema version, permissions, corruption."""


class NoSpace(StoreError):
    """A write failed for want of space (ENOSPC, EDQUOT). The message names what was being
    written and, where known, how much more space it needed; what the write left is removed.
    ``written`` is how many bytes of it had been written, so a caller that knows the whole size
    can say how much more was needed."""

    def __init__(self, message: str, *, written: int = 0) -> None:
        super().__init__(message)
        self.written = written


class ContainerNotFound(NotFound):
    """No container has this ID or name (in the store or in the runtime's state)."""


class VolumeNotFound(NotFound):
    """No volume has this name."""


class ContainerError(StrataError):
    """A container could not be created, started, signalled or removed."""


class CommandNotFound(ContainerError):
    """The container's command does not exist in its filesystem (exit status 127, as Docker)."""

    exit_code = 127


class CommandNotExecutable(ContainerError):
    """The container's command exists but cannot be executed (exit status 126, as Docker)."""

    exit_code = 126


class NetworkError(StrataError):
    """A network could not be set up or torn down (a CNI plugin failed, a port is taken)."""

    exit_code = 125


class NetworkNotFound(NotFound):
    """No network has this name or ID."""


class BuildError(StrataError):
    """A build could not be carried out (bad context, missing source, unknown stage, ...)."""


class DockerfileError(BuildError):
    """A Dockerfile does not parse, or a word in it does not expand.

    The message starts with ``FILE:LINE:`` when the place is known, as compilers print.
    """


class StepFailed(BuildError):
    """A RUN step exited non-zero; the build exits with the step's status, as Docker's does."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
        self.exit_code = status if 0 < status < 256 else 1


class RegistryError(StrataError):
    """A registry refused, failed or answered something we cannot use."""


class RegistryUnreachable(RegistryError):
    """The registry cannot be reached (connection refused, DNS, TLS, timeout) after retries."""


class AuthenticationRequired(RegistryError):
    """401: no or wrong credentials (``strata login`` fixes it)."""


class AccessDenied(RegistryError):
    """403: the credentials are not allowed this."""


class RegistryNotFound(NotFound, RegistryError):
    """404: no such repository, manifest, tag or blob at the registry."""
