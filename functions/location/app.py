"""location function: thin handlers (decode → service → encode)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from eco2 import Context, Function
from functions.location import service
from functions.location.places import provider
from functions.location.schemas import (
    Center,
    CenterDetail,
    CentersQuery,
    DetailQuery,
    LocationConfig,
    SearchQuery,
    Suggestion,
    SuggestQuery,
)

fn = Function(
    "location",
    uses=("db", "redis"),
    description="The map of collection points: nearby, place search, suggestions, detail.",
    config=LocationConfig,
)


@fn.get("/api/v1/locations/centers", query=CentersQuery, response=list[Center])
def centers(ctx: Context, query: CentersQuery) -> list[Center]:
    """Collection points around (lat, lon), nearest first."""
    return service.centers(
        ctx.db,
        lat=query.lat,
        lon=query.lon,
        radius=query.radius,
        zoom=query.zoom,
        store_category=query.store_category,
        pickup_category=query.pickup_category,
        now=datetime.now(UTC),
    )


@fn.get("/api/v1/locations/search", query=SearchQuery, response=list[Center], rate="60/minute")
def search(ctx: Context, query: SearchQuery) -> list[Center]:
    """Places matching `q` and the collection points around the first one."""
    return service.search(ctx.db, provider(ctx.config), q=query.q, radius=query.radius, now=datetime.now(UTC))


@fn.get("/api/v1/locations/suggest", query=SuggestQuery, response=list[Suggestion], rate="120/minute")
def suggest(ctx: Context, query: SuggestQuery) -> list[Suggestion]:
    """Place suggestions while typing."""
    return service.suggest(ctx.db, provider(ctx.config), q=query.q)


@fn.get("/api/v1/locations/centers/{center_id}", query=DetailQuery, response=CenterDetail)
def center(ctx: Context, center_id: str, query: DetailQuery) -> CenterDetail:
    """One collection point with its hours, items and introduction."""
    point_id = int(center_id) if center_id.lstrip("-").isdigit() else 0
    return service.detail(ctx.db, point_id, now=datetime.now(UTC), lat=query.lat, lon=query.lon)


DEV_KEY = "eco2-dev-kakao-local"


@fn.dev_mount(
    "/dev/kakao-local",
    env=lambda base_url: {
        "KAKAO_LOCAL_BASE_URL": f"{base_url}/dev/kakao-local",
        "KAKAO_REST_API_KEY": DEV_KEY,
    },
)
def kakao_local_standin(env: Mapping[str, str]) -> Any:
    """`eco2 dev`'s stand-in for Kakao Local keyword search, while the dev key is in use. To use the
    real service in `eco2 dev`, set both KAKAO_REST_API_KEY and KAKAO_LOCAL_BASE_URL."""
    if env.get("KAKAO_REST_API_KEY") != DEV_KEY:
        return None
    from functions.location.devplaces import KakaoLocalStandIn

    return KakaoLocalStandIn.with_project_points(DEV_KEY)
