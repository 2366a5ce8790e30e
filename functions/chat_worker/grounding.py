"""What an answer stands on: the disposal rules of the item asked about (the project's own data,
found with the scan pipeline's lexicon and taxonomy), nearby drop-off points (the location
function, over HTTP), and the photo's classification when one is attached."""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from functions.common import lexicon, recycling

log = logging.getLogger("eco2.chat.grounding")
_WHERE = re.compile(
    r"어디|근처|가까운|주변|수거함|수거\s*장소|버릴\s*곳|배출\s*장소|센터|가게|매장|제로\s*웨이스트|drop.?off", re.I
)
MAX_TARGETS = 12
MAX_EXCLUDED = 8
MAX_CENTERS = 3


@dataclass(frozen=True)
class Center:
    name: str
    road_address: str
    distance_text: str


@dataclass
class Grounding:
    item: recycling.Classification | None = None
    rules: recycling.Rules | None = None
    wants_place: bool = False
    located: bool = False
    centers: list[Center] | None = None  # None: not looked up, or the lookup failed
    photo: str | None = None  # what the vision model saw, in words
    notes: list[str] = field(default_factory=list)


def asks_where(text: str) -> bool:
    return bool(_WHERE.search(text or ""))


def item_of(text: str) -> recycling.Classification | None:
    found = lexicon.find_item(text)
    return None if found is None or found.unclassified else found


def rules_text(rules: recycling.Rules, minor: str) -> str:
    """The rules of one category as plain lines for the prompt (and the offline answer)."""
    lines = [f"[배출 규칙: {rules.category} > {rules.middle}]"]
    if rules.targets:
        lines.append("대상: " + ", ".join(rules.targets[:MAX_TARGETS]))
    steps = list(rules.item_steps.get(minor, [])) or list(rules.common_steps)
    if steps:
        lines.append("배출 방법:")
        lines.extend(f"{i}. {step}" for i, step in enumerate(steps, start=1))
    if rules.item_steps.get(minor) and rules.common_steps:
        lines.append("공통: " + " ".join(rules.common_steps))
    excluded = list(rules.excluded.items())[:MAX_EXCLUDED]
    if excluded:
        lines.append("여기에 넣으면 안 되는 것: " + "; ".join(f"{k} → {v}" for k, v in excluded))
    return "\n".join(lines)


def steps_for(rules: recycling.Rules, minor: str) -> list[str]:
    return list(rules.item_steps.get(minor, [])) or list(rules.common_steps)


def nearby(base_url: str, lat: float, lon: float, radius: int, timeout: float) -> list[Center] | None:
    """GET {base}/api/v1/locations/centers: the nearest points (None when the call fails)."""
    if not base_url:
        return None
    query = urllib.parse.urlencode({"lat": f"{lat:.6f}", "lon": f"{lon:.6f}", "radius": radius})
    url = f"{base_url}/api/v1/locations/centers?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # a configured http(s) base URL
            items: Any = json.loads(response.read())
    except (OSError, ValueError) as exc:
        log.warning("nearby search failed", extra={"error": type(exc).__name__})
        return None
    if not isinstance(items, list):
        return None
    out = []
    for item in items[:MAX_CENTERS]:
        if isinstance(item, dict) and item.get("name"):
            out.append(
                Center(str(item["name"]), str(item.get("road_address") or ""), str(item.get("distance_text") or ""))
            )
    return out


def centers_text(g: Grounding) -> str | None:
    if not g.wants_place:
        return None
    if not g.located:
        return (
            "[가까운 배출 장소] 사용자의 위치를 모름: 위치 권한을 켜고 다시 물어보면 근처 장소를 "
            "알려 줄 수 있다고 안내."
        )
    if g.centers is None:
        return "[가까운 배출 장소] 지금은 주변 장소를 찾지 못함: 지도 화면에서 찾아보도록 안내."
    if not g.centers:
        return "[가까운 배출 장소] 반경 안에 등록된 수거 장소가 없음."
    lines = ["[가까운 배출 장소] (가까운 순)"]
    lines.extend(f"- {c.name} ({c.distance_text}) {c.road_address}".rstrip() for c in g.centers)
    return "\n".join(lines)


def context_text(g: Grounding) -> str:
    """Everything the answer should stand on, for the prompt."""
    parts: list[str] = []
    if g.photo:
        parts.append(f"[사진 분류] {g.photo}")
    if g.item is not None:
        parts.append(f"[질문한 품목] {g.item.minor or g.item.middle} ({g.item.major} > {g.item.middle})")
    if g.rules is not None and g.item is not None:
        parts.append(rules_text(g.rules, g.item.minor))
    where = centers_text(g)
    if where:
        parts.append(where)
    parts.extend(g.notes)
    return "\n\n".join(parts)
