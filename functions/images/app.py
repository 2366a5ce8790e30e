"""images function: thin handlers (decode → service → encode)."""

from __future__ import annotations

from eco2 import Context, Function
from functions.images import service
from functions.images.config import ImagesConfig
from functions.images.schemas import ImageRecord, UploadCallback, UploadRequest, UploadTicket

fn = Function(
    "images",
    uses=("s3", "redis", "jwt"),
    description="Presigned image uploads to S3 and their confirmation.",
    config=ImagesConfig,
)


MAX_BODY = 16 * 1024  # a file name of 1024 characters and a content type fit many times over


@fn.post(
    "/api/v1/images/{channel}",
    auth=True,
    body=UploadRequest,
    response=UploadTicket,
    rate="30/minute",
    max_body=MAX_BODY,
)
def create_upload(ctx: Context, channel: str, body: UploadRequest) -> UploadTicket:
    """A presigned PUT URL for one image (channel: scan, chat or my)."""
    return service.create_upload(ctx.clients.s3, ctx.redis, ctx.settings, ctx.config, ctx.user_id, channel, body)


@fn.post("/api/v1/images/{channel}/callback", auth=True, body=UploadCallback, response=ImageRecord, max_body=MAX_BODY)
def confirm_upload(ctx: Context, channel: str, body: UploadCallback) -> ImageRecord:
    """Confirm an upload: the object is checked in S3, published at its key, and its record returned (once)."""
    return service.confirm_upload(ctx.clients.s3, ctx.redis, ctx.settings, ctx.config, ctx.user_id, channel, body)
