"""The errors a request can get, as TF Serving gives them: a gRPC status code and its REST
twin (HTTP status with `{"error": "..."}`)."""

from __future__ import annotations

import http

import grpc

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: http.HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: http.HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: http.HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.NOT_FOUND: http.HTTPStatus.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED: http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    grpc.StatusCode.UNIMPLEMENTED: http.HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: http.HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: http.HTTPStatus.REQUEST_TIMEOUT,
}


class ServingError(Exception):
    """A request the server refuses; `code` is the gRPC status, `http_status` its REST twin."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return int(_HTTP_STATUS.get(self.code, http.HTTPStatus.INTERNAL_SERVER_ERROR))


def invalid(message: str) -> ServingError:
    """INVALID_ARGUMENT (REST 400): the request itself is wrong."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """NOT_FOUND (REST 404): no such model, version or route."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)
