"""character function: thin handlers (decode → service → encode)."""

from __future__ import annotations

from werkzeug.wrappers import Response

from eco2 import Context, Event, Function
from eco2.core.runtime import json_response
from eventing.catalogue import CHARACTER_GRANTED, SCAN_COMPLETED, CharacterGranted, ScanCompleted
from functions.character import service
from functions.character.schemas import CatalogEntry
from functions.common.ownership import grant_from_event

fn = Function("character", uses=("db", "events"), description="The character catalogue and rewards.")


@fn.get("/api/v1/character/catalog", response=list[CatalogEntry])
def get_catalog(ctx: Context) -> Response:
    """The 13 characters (public; cached by clients for five minutes)."""
    body = [entry.model_dump() for entry in service.catalogue()]
    return json_response(body, headers={"Cache-Control": "public, max-age=300"})


@fn.event(SCAN_COMPLETED, data=ScanCompleted)
def on_scan_completed(ctx: Context, event: Event[ScanCompleted]) -> None:
    """A rewarded scan grants its character once; a first grant is announced (transactional outbox)."""
    scan = event.data
    if scan.reward_character_code is None:
        return
    if grant_from_event(ctx.db, scan.user_id, scan.reward_character_code, source="scan"):
        ctx.publish(
            CHARACTER_GRANTED,
            CharacterGranted(
                user_id=scan.user_id, character_code=scan.reward_character_code, source="scan", job_id=scan.job_id
            ),
            subject=scan.user_id,
        )
