"""The images function's HTTP shapes (API.md "images")."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class UploadRequest(BaseModel):
    filename: str = Field(
        min_length=1, max_length=1024, description="The user's file name; only its last part is kept."
    )
    content_type: str = Field(min_length=1, max_length=255, description="image/jpeg, image/png, image/webp, …")
    size: int | None = Field(
        default=None,
        ge=1,
        description="The file's size in bytes, if known: it is then signed, so S3 refuses a body of any other length.",
    )


class UploadTicket(BaseModel):
    key: str = Field(description="{channel}/{uuid-hex}{.ext}")
    upload_url: str = Field(
        description="Presigned S3 PUT URL (to the upload's pending object); send the raw bytes with required_headers."
    )
    cdn_url: str = Field(description="Where the image is served once uploaded.")
    expires_in: int = Field(description="Seconds the upload URL stays valid.")
    required_headers: dict[str, str] = Field(
        description="Headers the PUT must carry exactly (they are signed): Content-Type, and Content-Length "
        "when a size was given."
    )
    filename: str = Field(description="The file name as kept (path components stripped).")


class UploadCallback(BaseModel):
    key: str = Field(min_length=1, max_length=512)
    etag: str | None = Field(default=None, max_length=256, description="The ETag S3 answered to the PUT, if known.")


class ImageRecord(BaseModel):
    key: str
    channel: str
    content_type: str
    size: int
    etag: str
    cdn_url: str
    uploaded_at: datetime
    filename: str
