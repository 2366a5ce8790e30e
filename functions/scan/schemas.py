"""The scan function's HTTP shapes (API.md "scan")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image_url: str = Field(min_length=1, max_length=2048)
    user_input: str | None = Field(default=None, max_length=1000)
    model: str | None = Field(default=None, max_length=100)


class ScanAccepted(BaseModel):
    job_id: str
    stream_url: str
    result_url: str
    status: str = "queued"
