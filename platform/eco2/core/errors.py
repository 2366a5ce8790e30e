"""The one error taxonomy. Domain code raises these kinds of failure; they say what went wrong
(`code`, `detail`), never how a transport shows it: `eco2.core.runtime.STATUS` maps them to HTTP in one
place.

Every error answers `{"detail": "<human message>", "code": "<UPPER_SNAKE_CODE>"}`. Anything that is
not an `AppError` is logged with the request id and answered 500 with a generic body.
"""

from __future__ import annotations

from typing import ClassVar


class AppError(Exception):
    default_code: ClassVar[str] = "INTERNAL_ERROR"
    default_detail: ClassVar[str] = "Something went wrong on our side."

    def __init__(self, detail: str | None = None, code: str | None = None) -> None:
        self.detail = detail or self.default_detail
        self.code = code or self.default_code
        super().__init__(self.detail)

    def body(self) -> dict[str, str]:
        return {"detail": self.detail, "code": self.code}


class BadRequest(AppError):
    default_code = "BAD_REQUEST"
    default_detail = "The request is malformed."


class Unauthorized(AppError):
    """Not signed in, or the session expired: the app refreshes once and replays."""

    default_code = "NOT_AUTHENTICATED"
    default_detail = "Sign in to continue."


class Forbidden(AppError):
    """Revoked or not allowed: the app signs the user out."""

    default_code = "FORBIDDEN"
    default_detail = "You are not allowed to do this."


class NotFound(AppError):
    default_code = "NOT_FOUND"
    default_detail = "Not found."


class MethodNotAllowed(AppError):
    default_code = "METHOD_NOT_ALLOWED"
    default_detail = "This method is not allowed here."


class Conflict(AppError):
    default_code = "CONFLICT"
    default_detail = "The request conflicts with the current state."


class PayloadTooLarge(AppError):
    default_code = "PAYLOAD_TOO_LARGE"
    default_detail = "The request body is too large."


class UnsupportedMediaType(AppError):
    default_code = "UNSUPPORTED_MEDIA_TYPE"
    default_detail = "Send the body as application/json."


class Unprocessable(AppError):
    default_code = "VALIDATION_ERROR"
    default_detail = "The request is invalid."


class TooManyRequests(AppError):
    default_code = "TOO_MANY_REQUESTS"
    default_detail = "Too many requests; try again shortly."


class UpstreamError(AppError):
    """A dependency (OAuth provider, LLM, S3) failed or answered nonsense."""

    default_code = "UPSTREAM_ERROR"
    default_detail = "A service we depend on failed; try again shortly."


class ServiceUnavailable(AppError):
    default_code = "SERVICE_UNAVAILABLE"
    default_detail = "The service is not ready; try again shortly."


INTERNAL_ERROR_BODY = {"detail": AppError.default_detail, "code": AppError.default_code}
