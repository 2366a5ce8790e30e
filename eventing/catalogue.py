"""Every CloudEvent type Eco² uses, defined once: type, source, data schema, producers, consumers.

Producers and handlers import these constants; a contract test fails when func.yaml
subscriptions, rendered Triggers, handlers and this catalogue disagree. `python -m
eventing.catalogue` regenerates the table in eventing/README.md.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# -- types ------------------------------------------------------------------------------------------
SCAN_REQUESTED = "eco2.scan.job.requested.v1"
SCAN_PROGRESSED = "eco2.scan.job.progressed.v1"
SCAN_COMPLETED = "eco2.scan.job.completed.v1"
SCAN_FAILED = "eco2.scan.job.failed.v1"
CHARACTER_GRANTED = "eco2.character.ownership.granted.v1"
USER_DELETED = "eco2.users.account.deleted.v1"
CHAT_REQUESTED = "eco2.chat.message.requested.v1"
CHAT_COMPLETED = "eco2.chat.message.completed.v1"
INFO_NEWS_DUE = "eco2.info.news.collection-scheduled.v1"


class _Data(BaseModel):
    # schemas are built on first use, not at import: a function's cold start does not pay for
    # the event types it never receives
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ScanRequested(_Data):
    job_id: str
    user_id: str
    image_url: str
    user_input: str | None = None
    model: str | None = None


class ScanProgressed(_Data):
    job_id: str
    stage: str
    progress: int = Field(ge=0, le=100)


class ScanCompleted(_Data):
    job_id: str
    user_id: str
    major_category: str
    middle_category: str
    reward_character_code: str | None = None


class ScanFailed(_Data):
    job_id: str
    user_id: str
    error: str


class CharacterGranted(_Data):
    user_id: str
    character_code: str
    source: str = "scan"
    job_id: str | None = None


class UserDeleted(_Data):
    user_id: str


class GeoPoint(_Data):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class ChatRequested(_Data):
    job_id: str
    user_id: str
    chat_id: str
    message: str
    image_url: str | None = None
    user_location: GeoPoint | None = None
    model: str | None = None
    requested_at: str | None = None  # ISO-8601: the user message's time when it is stored


class ChatCompleted(_Data):
    job_id: str
    chat_id: str
    assistant_message_id: str
    user_id: str | None = None


class NewsCollectionScheduled(_Data):
    categories: list[str] = Field(default_factory=lambda: ["environment", "energy", "ai"])


@dataclass(frozen=True)
class EventSpec:
    type: str
    source: str
    data: builtins.type[BaseModel]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    description: str

    def schema(self) -> dict[str, Any]:
        return self.data.model_json_schema()


CATALOGUE: dict[str, EventSpec] = {
    spec.type: spec
    for spec in (
        EventSpec(
            SCAN_REQUESTED,
            "/eco2/scan",
            ScanRequested,
            ("scan",),
            ("scan-worker",),
            "A user submitted a photo for classification.",
        ),
        EventSpec(
            SCAN_PROGRESSED,
            "/eco2/scan-worker",
            ScanProgressed,
            ("scan-worker",),
            (),
            "A scan job finished a stage (the SSE stream carries the same progress).",
        ),
        EventSpec(
            SCAN_COMPLETED,
            "/eco2/scan-worker",
            ScanCompleted,
            ("scan-worker",),
            ("character",),
            "A scan job produced its answer and reward decision.",
        ),
        EventSpec(
            SCAN_FAILED, "/eco2/scan-worker", ScanFailed, ("scan-worker",), (), "A scan job ended without an answer."
        ),
        EventSpec(
            CHARACTER_GRANTED,
            "/eco2/character",
            CharacterGranted,
            ("character",),
            ("users",),
            "A user earned a character (idempotent per user and character).",
        ),
        EventSpec(USER_DELETED, "/eco2/users", UserDeleted, ("users",), (), "A user deleted their account."),
        EventSpec(
            CHAT_REQUESTED,
            "/eco2/chat",
            ChatRequested,
            ("chat",),
            ("chat-worker",),
            "A user sent a chat message that needs an answer.",
        ),
        EventSpec(
            CHAT_COMPLETED,
            "/eco2/chat-worker",
            ChatCompleted,
            ("chat-worker",),
            (),
            "The assistant's answer was streamed and stored.",
        ),
        EventSpec(
            INFO_NEWS_DUE,
            "/eco2/schedules/news",
            NewsCollectionScheduled,
            ("schedule",),
            ("info",),
            "Time to collect recycling news (a PingSource tick).",
        ),
    )
}


def get(event_type: str) -> EventSpec:
    try:
        return CATALOGUE[event_type]
    except KeyError:
        raise KeyError(f"{event_type} is not in the event catalogue (eventing/catalogue.py)") from None


def markdown_table() -> str:
    rows = ["| type | source | producers | consumers | data | meaning |", "|---|---|---|---|---|---|"]
    for spec in CATALOGUE.values():
        fields = ", ".join(
            f"`{name}`" + ("" if name in spec.schema().get("required", []) else "?")
            for name in spec.schema()["properties"]
        )
        rows.append(
            f"| `{spec.type}` | `{spec.source}` | {', '.join(spec.producers) or '—'} | "
            f"{', '.join(spec.consumers) or '—'} | {fields} | {spec.description} |"
        )
    return "\n".join(rows)


def schemas() -> dict[str, Any]:
    return {t: spec.schema() for t, spec in CATALOGUE.items()}


if __name__ == "__main__":
    print(markdown_table())
    print()
    print(json.dumps(schemas(), indent=2, ensure_ascii=False))
