"""Errors of the service layer, independent of gRPC.

Each carries a code that the servicers map one-to-one onto a gRPC status, and a
message that names the field and the reason, e.g.
``subnet.cidr: '10.0.0.0/33' is not a valid IPv4 CIDR``.
"""

from __future__ import annotations

import enum

from controller.store.base import ConflictError, InvariantError, NotFoundError


class ErrorCode(enum.Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    OUT_OF_RANGE = "OUT_OF_RANGE"


class ApiError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(field: str, reason: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_ARGUMENT, f"{field}: {reason}")


def not_found(kind: str, id: str, field: str | None = None) -> ApiError:
    prefix = f"{field}: " if field else ""
    return ApiError(ErrorCode.NOT_FOUND, f"{prefix}{kind} {id!r} not found")


def already_exists(field: str, reason: str) -> ApiError:
    return ApiError(ErrorCode.ALREADY_EXISTS, f"{field}: {reason}")


def failed_precondition(reason: str) -> ApiError:
    return ApiError(ErrorCode.FAILED_PRECONDITION, reason)


def from_store_error(exc: Exception) -> ApiError:
    """The API error for a store refusing a commit (a race the service's own checks did not see)."""
    if isinstance(exc, ConflictError):
        return already_exists(f"{exc.kind}.{exc.field}", exc.message)
    if isinstance(exc, InvariantError):
        return failed_precondition(f"{exc.kind}.{exc.field}: {exc.message}")
    if isinstance(exc, NotFoundError):
        return not_found(exc.kind, exc.id)
    raise TypeError(f"not a store error: {exc!r}")
