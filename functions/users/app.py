"""users function: thin handlers (decode → service → encode)."""

from __future__ import annotations

from eco2 import Context, Event, Function
from eco2.core.security import revoke_all
from eventing.catalogue import CHARACTER_GRANTED, CharacterGranted
from functions.common.ownership import grant_from_event
from functions.users import service
from functions.users.schemas import OwnedCharacter, Profile, ProfilePatch

fn = Function("users", uses=("db", "redis", "jwt"), description='The "my" domain: profile and characters.')


@fn.get("/api/v1/users/me", auth=True, response=Profile)
def get_me(ctx: Context) -> Profile:
    """The signed-in user's profile."""
    with ctx.read() as connection:
        return service.profile(connection, ctx.user_id)


@fn.patch("/api/v1/users/me", auth=True, body=ProfilePatch, response=Profile)
def patch_me(ctx: Context, body: ProfilePatch) -> Profile:
    """Change nickname and/or phone number."""
    return service.update_profile(ctx.db, ctx.user_id, body)


@fn.get("/api/v1/users/me/characters", auth=True, response=list[OwnedCharacter])
def my_characters(ctx: Context) -> list[OwnedCharacter]:
    """Owned characters (the default one for a new user)."""
    return service.owned_characters(ctx.db, ctx.user_id)


@fn.delete("/api/v1/users/me", auth=True, status=204)
def delete_me(ctx: Context) -> None:
    """Delete the account and its data; every session of the user is revoked."""
    service.delete_account(ctx.db, ctx.user_id)
    ctx.db.flush()
    revoke_all(ctx.redis, ctx.user_id, ctx.settings.refresh_token_ttl)
    ctx.delete_cookie("s_access")
    ctx.delete_cookie("s_refresh")


@fn.event(CHARACTER_GRANTED, data=CharacterGranted)
def on_character_granted(ctx: Context, event: Event[CharacterGranted]) -> None:
    """Keep "my characters" current when the character function grants one (idempotent)."""
    grant_from_event(ctx.db, event.data.user_id, event.data.character_code, event.data.source)
