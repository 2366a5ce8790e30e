"""Confirmed image uploads, shared by `images` (which records them) and `scan` (which accepts only them).

When the images function confirms an upload it records who uploaded it and where it is served:

- `image:confirmed:{key}`  JSON {user_id, channel, content_type, size, cdn_url, confirmed_at}, kept
                           CONFIRMED_TTL (a week: a photo is scanned right after it is uploaded)

`scan` reads the record of the key at the end of the submitted URL and accepts the URL only when
this user confirmed that key and the URL is exactly the one the images function answered.
Keys look like `{channel}/{uuid-hex}{.ext}` (API.md "images").
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

CONFIRMED_PREFIX = "image:confirmed:"
CONFIRMED_TTL = 7 * 24 * 3600
CHANNELS = ("scan", "chat", "my")
EXTENSIONS = ("jpg", "png", "webp", "gif", "heic", "heif")
KEY_RE = re.compile(rf"(?P<channel>{'|'.join(CHANNELS)})/[0-9a-f]{{32}}\.(?:{'|'.join(EXTENSIONS)})")


@dataclass(frozen=True)
class ConfirmedUpload:
    key: str
    user_id: str
    channel: str
    content_type: str
    size: int
    cdn_url: str
    confirmed_at: str


def is_key(key: str) -> bool:
    return KEY_RE.fullmatch(key) is not None


def key_in_path(path: str) -> str | None:
    """The image key a URL path ends with (`/bucket/scan/<hex>.png` -> `scan/<hex>.png`), or None."""
    found = KEY_RE.search(path)
    if found is None or found.end() != len(path):
        return None
    return found.group(0)


class ConfirmedUploads:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def record(self, upload: ConfirmedUpload) -> None:
        payload = json.dumps(asdict(upload), ensure_ascii=False)
        self.client.set(CONFIRMED_PREFIX + upload.key, payload, ex=CONFIRMED_TTL)

    def get(self, key: str) -> ConfirmedUpload | None:
        if not is_key(key):
            return None
        raw = self.client.get(CONFIRMED_PREFIX + key)
        if raw is None:
            return None
        try:
            return ConfirmedUpload(**json.loads(raw))
        except (ValueError, TypeError):
            return None

    def owned(self, key: str, user_id: str) -> ConfirmedUpload | None:
        """The upload of `key` when `user_id` confirmed it; None for anyone else (or nobody)."""
        upload = self.get(key)
        return upload if upload is not None and upload.user_id == user_id else None
