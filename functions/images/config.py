"""The images function's own settings (`Function(config=ImagesConfig)`), read once at startup.

- `IMAGES_MAX_BYTES`: the largest image accepted, in bytes (default 10 MiB). A declared `size`
  above it is refused at presign; a stored object above it is deleted at the callback (413
  `IMAGE_TOO_LARGE`).
- `IMAGES_PENDING_MAX_AGE`: seconds an unconfirmed upload under `pending/` is kept before the sweep
  deletes it (default 1020: the URL's 900 s plus the callback's margin).
- `IMAGES_SWEEP_INTERVAL`: seconds between two sweeps of `pending/` (one per interval across all
  pods, started by a presign); 0 turns the sweep off and leaves expiry to the bucket's lifecycle
  rule. Default 300.

In AWS the bucket's lifecycle rule (infra/terraform/modules/images) expires `pending/` after a day
whatever happens here; the sweep is the same behaviour locally (moto has no lifecycle), and sooner.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

UPLOAD_TTL = 900  # seconds a presigned PUT stays valid (API.md: 900 s)
PENDING_MARGIN = 120  # the pending record outlives the URL: an upload that began at 899 s can still call back


class ImagesConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    images_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=5 * 1024**3)  # S3's single-PUT limit
    images_pending_max_age: int = Field(default=UPLOAD_TTL + PENDING_MARGIN, ge=1)
    images_sweep_interval: int = Field(default=300, ge=0)
