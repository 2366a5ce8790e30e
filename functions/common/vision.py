"""The vision classification a photo gets (scan, and chat when a photo is attached): the system
prompt and the strict JSON schema that keeps the model on the taxonomy's exact strings."""

from __future__ import annotations

from typing import Any

VISION_SYSTEM = (
    "너는 사진 속 폐기물을 한국 분리배출 기준으로 분류하는 도우미야. 반드시 주어진 분류표의 문자열만 "
    "그대로 써. 대분류(major)와 중분류(middle)는 분류표에 있는 값이어야 하고, 애매하면 둘 다 '미분류'로 "
    "답해. 품목(minor)은 사진 속 물건의 이름을 짧게 적어. situation_tags에는 사진에서 실제로 보이는 "
    "상태만 태그 목록에서 골라 넣어."
)


def vision_schema(majors: list[str], middles: list[str], tags: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["major_category", "middle_category", "minor_category", "situation_tags"],
        "properties": {
            "major_category": {"type": "string", "enum": majors},
            "middle_category": {"type": "string", "enum": middles},
            "minor_category": {"type": "string"},
            "situation_tags": {"type": "array", "items": {"type": "string", "enum": tags}},
        },
    }
