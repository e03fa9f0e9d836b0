"""The errors users will hit: one clear sentence and an exit code each."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PRIVILEGE = 3
EXIT_LINK = 4  # interface, route or next-hop resolution (ARP/NDP) failure
EXIT_TCP = 5  # refused, reset, timeout (also --connect-timeout and --max-time reached)
EXIT_HTTP = 6  # HTTP error status or bad response
EXIT_OUTPUT = 7  # cannot write the output file
EXIT_TLS = 8  # certificate refused, handshake failed
EXIT_INTERRUPTED = 130


class RawtuiError(Exception):
    """An error with a one-sentence message for the user and the process exit code."""

    exit_code = 1
    transient = False  # worth another try with --retry (refused, reset, timeout, ARP, 408/429/5xx...)
    retry_after: float | None = None  # seconds the server asked us to wait (Retry-After)

    def __init__(self, message: str, exit_code: int | None = None, *, transient: bool | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code
        if transient is not None:
            self.transient = transient
        if retry_after is not None:
            self.retry_after = retry_after


class UsageError(RawtuiError):
    exit_code = EXIT_USAGE


class PrivilegeError(RawtuiError):
    exit_code = EXIT_PRIVILEGE


class LinkError(RawtuiError):
    exit_code = EXIT_LINK


class TcpError(RawtuiError):
    exit_code = EXIT_TCP
    transient = True  # refused, reset, timed out: a retry may well succeed


class HttpError(RawtuiError):
    exit_code = EXIT_HTTP


class OutputError(RawtuiError):
    exit_code = EXIT_OUTPUT


class TlsError(RawtuiError):
    exit_code = EXIT_TLS
