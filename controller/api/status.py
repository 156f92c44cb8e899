"""Mapping service-layer errors onto gRPC status codes, for every servicer."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from controller.api.errors import ApiError, ErrorCode
from dataplane.common.logs import get_logger

log = get_logger(__name__)

STATUS_CODES: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.OUT_OF_RANGE: grpc.StatusCode.OUT_OF_RANGE,
}

F = TypeVar("F", bound=Callable[..., Any])


def abort(context: grpc.ServicerContext, error: ApiError) -> None:
    context.abort(STATUS_CODES[error.code], error.message)


def maps_errors(method: F) -> F:
    """Turn ApiError into its status; anything unexpected into INTERNAL, logged with its traceback."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except ApiError as exc:
            abort(context, exc)
        except Exception as exc:
            if _is_abort(exc):
                raise
            log.exception("request failed", method=method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}: {type(exc).__name__}")

    return wrapper  # type: ignore[return-value]


def _is_abort(exc: Exception) -> bool:
    # context.abort() raises a plain Exception that grpc recognises; let it through untouched.
    return type(exc) is Exception and not exc.args
