"""The project's own waste data (functions/common/data/waste) and its loader functions.common.recycling."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from functions.common import recycling
from functions.common.characters import catalog
from functions.common.recycling import RECYCLABLE, UNCLASSIFIED, Classification, taxonomy

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference-data"
RECYCLABLE_MIDDLES = [
    "종이",
    "종이팩",
    "무색페트병",
    "플라스틱류",
    "비닐류",
    "발포합성수지",
    "유리병",
    "금속류",
    "의류및원단",
    "전지",
    "조명제품",
    "전기전자제품",
]
MAJORS = [
    RECYCLABLE,
    "일반종량제폐기물",
    "불연성종량제폐기물",
    "음식물류폐기물",
    "대형폐기물",
    "공사장생활폐기물",
    "생활계유해폐기물",
    UNCLASSIFIED,
]


def test_the_data_is_consistent() -> None:
    assert recycling.validate() == []


def test_importing_does_no_io() -> None:
    code = (
        "import functions.common.recycling as r;"
        "print(r.taxonomy.cache_info().currsize, r._tag_list.cache_info().currsize,"
        " r._rules_list.cache_info().currsize)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0", "0"]


# -- taxonomy ----------------------------------------------------------------------------------------


def test_majors_and_middles() -> None:
    tax = taxonomy()
    assert tax.majors() == MAJORS
    assert tax.middles(RECYCLABLE) == RECYCLABLE_MIDDLES
    assert tax.recyclable_middles() == RECYCLABLE_MIDDLES
    for major in MAJORS[1:]:
        assert tax.middles(major) == [major]  # a major without middles is its own middle
    assert tax.middles("없는대분류") == []
    assert tax.all_middles()[:12] == RECYCLABLE_MIDDLES and "대형폐기물" in tax.all_middles()


def test_items_and_validity() -> None:
    tax = taxonomy()
    assert "우유팩" in tax.items(RECYCLABLE, "종이팩")
    assert "먹는샘물PET병" in tax.items(RECYCLABLE, "무색페트병")
    assert "도자기" in tax.items("불연성종량제폐기물", "불연성종량제폐기물")
    assert tax.items(RECYCLABLE, "대형폐기물") == [] and tax.items(UNCLASSIFIED, UNCLASSIFIED) == []
    assert tax.is_valid(RECYCLABLE, "종이") and tax.is_valid("대형폐기물", "대형폐기물")
    assert tax.is_valid(UNCLASSIFIED, UNCLASSIFIED)
    assert not tax.is_valid(RECYCLABLE, "플라스틱")  # exact strings only
    assert not tax.is_valid("일반종량제폐기물", "플라스틱류")
    for major in tax.majors():
        for middle in tax.middles(major):
            items = tax.items(major, middle)
            assert len(items) == len(set(items)), (major, middle)
            assert tax.summary(major, middle)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # exact
        ((RECYCLABLE, "무색페트병", "생수병"), (RECYCLABLE, "무색페트병", "생수병")),
        (("대형폐기물", "대형폐기물", "소파"), ("대형폐기물", "대형폐기물", "소파")),
        # whitespace and separators
        ((" 재활용폐기물 ", " 종이팩\n", "  우유 팩 "), (RECYCLABLE, "종이팩", "우유 팩")),
        ((RECYCLABLE, "의류 및 원단", ""), (RECYCLABLE, "의류및원단", "")),
        (("공사장 생활폐기물", "", ""), ("공사장생활폐기물", "공사장생활폐기물", "")),
        # a missing "류" and unique prefixes
        ((RECYCLABLE, "플라스틱", "요구르트병"), (RECYCLABLE, "플라스틱류", "요구르트병")),
        ((RECYCLABLE, "금속", ""), (RECYCLABLE, "금속류", "")),
        (("재활용", "유리", ""), (RECYCLABLE, "유리병", "")),
        (("음식물", "", "수박 껍질"), ("음식물류폐기물", "음식물류폐기물", "수박 껍질")),
        # ambiguous: 페트병 may be colourless (무색페트병) or coloured (플라스틱류); 종 prefixes two
        ((RECYCLABLE, "페트병", ""), (UNCLASSIFIED, UNCLASSIFIED, "")),
        ((RECYCLABLE, "종", ""), (UNCLASSIFIED, UNCLASSIFIED, "")),
        # unknown
        (("기타", "종이", "영수증"), (UNCLASSIFIED, UNCLASSIFIED, "영수증")),
        ((RECYCLABLE, "나무", ""), (UNCLASSIFIED, UNCLASSIFIED, "")),
        (("", "", ""), (UNCLASSIFIED, UNCLASSIFIED, "")),
        ((None, None, None), (UNCLASSIFIED, UNCLASSIFIED, "")),
        # 미분류 stays 미분류, whatever the middle says
        ((UNCLASSIFIED, "종이", ""), (UNCLASSIFIED, UNCLASSIFIED, "")),
        # a middle of another major: contradiction → 미분류
        ((RECYCLABLE, "음식물류폐기물", "귤껍질"), (UNCLASSIFIED, UNCLASSIFIED, "귤껍질")),
        ((RECYCLABLE, "대형폐기물", ""), (UNCLASSIFIED, UNCLASSIFIED, "")),
        # a major without middles decides: the recyclable middle is corrected away
        (
            ("일반종량제폐기물", "플라스틱류", "오염된 배달용기"),
            ("일반종량제폐기물", "일반종량제폐기물", "오염된 배달용기"),
        ),
        # no major: a middle that says it all is corrected to its major
        (("", "종이팩", "우유팩"), (RECYCLABLE, "종이팩", "우유팩")),
        ((None, "대형폐기물", ""), ("대형폐기물", "대형폐기물", "")),
        # 재활용폐기물 without a middle: the minor names an item of exactly one middle
        ((RECYCLABLE, "", "우유팩"), (RECYCLABLE, "종이팩", "우유팩")),
        ((RECYCLABLE, "모름", "알루미늄캔"), (RECYCLABLE, "금속류", "알루미늄캔")),
        ((RECYCLABLE, "우유팩", ""), (RECYCLABLE, "종이팩", "")),  # an item given as the middle
        # ... but 식품용기 is an item of both 플라스틱류 and 발포합성수지
        ((RECYCLABLE, "", "식품용기"), (UNCLASSIFIED, UNCLASSIFIED, "식품용기")),
    ],
)
def test_normalise(given: tuple[str | None, str | None, str | None], expected: tuple[str, str, str]) -> None:
    result = taxonomy().normalise(*given)
    assert isinstance(result, Classification)
    assert (result.major, result.middle, result.minor) == expected
    assert taxonomy().is_valid(result.major, result.middle)


def test_normalise_flags() -> None:
    assert taxonomy().normalise("x", "y").unclassified
    assert taxonomy().normalise(RECYCLABLE, "전지").recyclable
    assert not taxonomy().normalise("대형폐기물", "").recyclable


# -- situation tags ----------------------------------------------------------------------------------


def test_tags() -> None:
    tags = recycling.situation_tags()
    assert 70 <= len(tags) <= 80
    ids = [t.id for t in recycling._tag_list()]
    assert len(ids) == len(set(ids))
    assert tags["내용물_있음"].insufficiency and "비우" in tags["내용물_있음"].insufficiency
    assert tags["내용물_있음"].group == "내용물_오염"
    assert tags["내용물_없음"].insufficiency is None
    assert tags["비닐_라벨_부착"].insufficiency and tags["비닐_라벨_완전_제거됨"].insufficiency is None
    assert tags["가스제거_필요"].insufficiency and tags["플라스틱_재질"].insufficiency is None
    assert tags["뚜껑_닫힘(플라스틱)"].insufficiency is None  # a closed cap is how a PET bottle goes out
    neutral = [t for t in tags.values() if t.insufficiency is None]
    lacking = [t for t in tags.values() if t.insufficiency is not None]
    assert len(neutral) >= 20 and len(lacking) >= 40
    assert all(t.insufficiency and t.insufficiency.endswith(".") for t in lacking)


def test_insufficiencies_lookup() -> None:
    tags = recycling.situation_tags()
    got = recycling.insufficiencies(["내용물_있음", "내용물_없음", "모르는_태그", "비닐_라벨_부착", "내용물_있음"])
    assert got == [tags["내용물_있음"].insufficiency, tags["비닐_라벨_부착"].insufficiency]
    assert recycling.insufficiencies(["내용물_없음", "비닐_라벨_완전_제거됨"]) == []


def test_every_reference_tag_is_known() -> None:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not present at {REFERENCE}")
    raw = yaml.safe_load((REFERENCE / "situation-tags.yaml").read_text(encoding="utf-8"))
    assert set(raw["situation_tags"]) == set(recycling.situation_tags())


# -- rules -------------------------------------------------------------------------------------------


def test_every_recyclable_middle_has_rules_and_a_character() -> None:
    matches = {c.match: c for c in catalog().characters if not c.default}
    for middle in taxonomy().recyclable_middles():
        rules = recycling.rules_for(RECYCLABLE, middle)
        assert rules is not None, middle
        assert (rules.key, rules.category, rules.middle) == (middle, RECYCLABLE, middle)
        assert rules.common_steps and rules.targets
        assert middle in matches, middle


def test_every_category_has_rules_except_unclassified() -> None:
    for major in taxonomy().majors():
        for middle in taxonomy().middles(major):
            rules = recycling.rules_for(major, middle)
            assert (rules is None) == (major == UNCLASSIFIED), (major, middle)
    assert len(recycling.all_rules()) == 18


def test_rules_content() -> None:
    pet = recycling.rules_for(RECYCLABLE, "무색페트병")
    assert pet is not None
    assert any("라벨" in s for s in pet.common_steps)
    assert all("플라스틱류" in where for where in pet.excluded.values())
    food = recycling.rules_for("음식물류폐기물", "음식물류폐기물")
    assert food is not None and food.common_steps and any("뼈" in item for item in food.excluded)
    glass = recycling.rules_for(RECYCLABLE, "유리병")
    assert glass is not None and "깨진 유리병" in glass.item_steps
    assert glass.steps()[: len(glass.common_steps)] == glass.common_steps
    assert recycling.rules_for(RECYCLABLE, "플라스틱") is None  # exact strings only
    assert recycling.rules_for(UNCLASSIFIED, UNCLASSIFIED) is None


def test_rules_are_copies() -> None:
    first = recycling.rules_for(RECYCLABLE, "종이")
    assert first is not None
    first.common_steps.append("바뀜")
    first.excluded["x"] = "y"
    again = recycling.rules_for(RECYCLABLE, "종이")
    assert again is not None and "바뀜" not in again.common_steps and "x" not in again.excluded


# -- the categories endpoint -------------------------------------------------------------------------


def test_categories() -> None:
    cats = recycling.categories()
    assert len(cats) == 12 + 6  # 미분류 is not a category to dispose into
    assert all(set(c) == {"major", "middle", "summary", "examples"} for c in cats)
    assert [c["middle"] for c in cats[:12]] == RECYCLABLE_MIDDLES
    assert all(c["summary"] and 0 < len(c["examples"]) <= 8 for c in cats)
    assert UNCLASSIFIED not in {c["major"] for c in cats}
    json.dumps(cats, ensure_ascii=False)


# -- the user-facing sentences are the project's own -------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"[\s.,·()'\"‘’]", "", text)


def test_sentences_are_not_copied_from_the_reference() -> None:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not present at {REFERENCE}: nothing to compare against")
    reference_sentences: set[str] = set()
    for file in (REFERENCE / "disposal-rules").glob("*.json"):
        raw = json.loads(file.read_text(encoding="utf-8"))
        reference_sentences.update(raw.get("배출방법_공통") or [])
        for steps in (raw.get("배출방법_세부") or {}).values():
            reference_sentences.update(steps)
        reference_sentences.update((raw.get("배출불가_품목_안내") or {}).values())
        reference_sentences.update(raw.get("대상_설명") or [])
    copied = {_norm(s) for s in reference_sentences if len(_norm(s)) > 12}
    assert len(copied) > 30

    ours: list[str] = []
    for rules in recycling.all_rules():
        ours += rules.common_steps
        ours += [s for steps in rules.item_steps.values() for s in steps]
        ours += list(rules.excluded.values())
    ours += [t.insufficiency for t in recycling.situation_tags().values() if t.insufficiency]
    ours += [c["summary"] for c in recycling.categories()]
    assert not [s for s in ours if _norm(s) in copied]
    # and no common step equals a reference common step, even loosely
    reference_common = set()
    for file in (REFERENCE / "disposal-rules").glob("*.json"):
        reference_common.update(_norm(s) for s in json.loads(file.read_text(encoding="utf-8"))["배출방법_공통"])
    assert not [s for r in recycling.all_rules() for s in r.common_steps if _norm(s) in reference_common]
