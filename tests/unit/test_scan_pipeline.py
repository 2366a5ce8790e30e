"""The scan pipeline's rules, without transport: reward decision, offline classifier, answers."""

from __future__ import annotations

import pytest

from functions.common import recycling
from functions.scan_worker import pipeline
from functions.scan_worker.llm import Vision, _json_object


def vision(major: str = "재활용폐기물", middle: str = "무색페트병", tags: list[str] | None = None) -> Vision:
    return Vision(major, middle, "생수병", tags or [])


def test_reward_only_for_clean_recyclables_with_rules() -> None:
    rules = recycling.rules_for("재활용폐기물", "무색페트병")
    assert rules is not None
    assert pipeline.reward_stage(vision(), rules, []).name == "페티"  # type: ignore[union-attr]
    assert pipeline.reward_stage(vision(), rules, ["내용물을 비워 주세요"]) is None
    assert pipeline.reward_stage(vision(), None, []) is None
    general = recycling.rules_for("일반종량제폐기물", "일반종량제폐기물")
    assert pipeline.reward_stage(vision("일반종량제폐기물", "일반종량제폐기물"), general, []) is None
    assert pipeline.reward_stage(vision("미분류", "미분류"), None, []) is None


@pytest.mark.parametrize("middle", recycling.taxonomy().middles("재활용폐기물"))
def test_every_recyclable_middle_rewards_its_own_character(middle: str) -> None:
    rules = recycling.rules_for("재활용폐기물", middle)
    character = pipeline.reward_stage(vision(middle=middle), rules, [])
    assert character is not None and character.match == middle


def test_offline_keywords_point_into_the_taxonomy() -> None:
    tax = recycling.taxonomy()
    for word, major, middle in pipeline._keywords():
        assert tax.is_valid(major, middle), (word, major, middle)


@pytest.mark.parametrize(
    ("text", "middle"),
    [
        ("다 마신 생수병", "무색페트병"),
        ("택배 상자", "종이"),
        ("다 쓴 건전지", "전지"),
        ("맥주캔", "금속류"),
        ("이건 뭘까요", "미분류"),
        (None, "미분류"),
    ],
)
def test_offline_classifier(text: str | None, middle: str) -> None:
    result = pipeline.offline_classify(text)
    assert result.middle == middle
    assert result.note == pipeline.OFFLINE_NOTE


def test_offline_answer_is_built_from_the_rules() -> None:
    rules = recycling.rules_for("재활용폐기물", "무색페트병")
    steps = pipeline.deterministic_steps(vision(), rules)
    assert steps and all(isinstance(s, str) and s for s in steps)
    assert pipeline.deterministic_steps(vision("미분류", "미분류"), None)[0].startswith("분류가 확실하지")


def test_short_answer_stays_within_three_sentences() -> None:
    long = "하나. 둘! 셋? 넷. 다섯."
    assert pipeline._three_sentences(long) == "하나. 둘! 셋?"


@pytest.mark.parametrize(
    ("raw", "ok"), [('{"a": 1}', True), ('```json\n{"a": 1}\n```', True), ("[1]", False), ("nope", False), ("", False)]
)
def test_json_object_parsing(raw: str, ok: bool) -> None:
    assert (_json_object(raw) is not None) is ok
