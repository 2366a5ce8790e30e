"""The location function's settings section and HTTP shapes (API.md "location")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class LocationConfig(BaseModel):
    """Read once at startup from KAKAO_LOCAL_BASE_URL, KAKAO_REST_API_KEY, KAKAO_LOCAL_TIMEOUT."""

    model_config = ConfigDict(frozen=True)

    kakao_local_base_url: str = "https://dapi.kakao.com"
    kakao_rest_api_key: SecretStr | None = None  # none: search and suggest use the database alone
    kakao_local_timeout: float = Field(default=1.5, gt=0, le=10, description="seconds, connect and read")


class CentersQuery(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius: float | None = Field(default=None, description="metres; clamped to 100 m .. 50 km")
    zoom: int | None = Field(default=None, ge=1, le=20)
    store_category: str = "all"
    pickup_category: str = "all"


class SearchQuery(BaseModel):
    q: str = Field(min_length=1, max_length=100)
    radius: float = Field(default=5000, description="metres around the place found; clamped to 100 m .. 50 km")


class SuggestQuery(BaseModel):
    q: str = Field(min_length=1, max_length=100)


class DetailQuery(BaseModel):
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class Center(BaseModel):
    id: int
    name: str
    source: str
    road_address: str | None
    latitude: float | None
    longitude: float | None
    distance_km: float | None
    distance_text: str | None
    store_category: str
    pickup_categories: list[str]
    is_holiday: bool
    is_open: bool | None = Field(description="null when the point publishes no hours")
    start_time: str | None
    end_time: str | None
    phone: str | None
    place_url: str | None
    opening_status: str = Field(description="open | closed | holiday | unknown")
    opening_text: str


class CenterDetail(Center):
    lot_address: str | None
    collection_items: str | None
    introduction: str | None
    place_description: str | None
    hours: dict[str, str | None] = Field(description="weekday (mon..sun, holiday) -> 'HH:MM-HH:MM', '휴무' or null")
    hours_note: str | None


class Suggestion(BaseModel):
    place_name: str
    address: str
    latitude: float
    longitude: float
    place_url: str | None
