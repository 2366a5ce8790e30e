"""The scan pipeline's rules, without transport: reward decision, offline classifier, answers."""

from __future__ import annotations

import pytest

from functions.common import recycling
from functions.common.llmmodels import ScanModels
from functions.scan_worker import pipeline
from functions.scan_worker.llm import LLM, Vision, _json_object


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
    # it says it read the description only when there was one
    assert result.note == (pipeline.OFFLINE_NOTE if text else pipeline.OFFLINE_NO_WORDS_NOTE)


def test_an_unclassified_result_reads_well_in_the_app() -> None:
    """The app writes "이 쓰레기는 {minor_category}으로 보이네요": the minor category is never empty."""
    unknown = pipeline._classification(pipeline.offline_classify(None))["classification"]
    assert unknown["minor_category"] == pipeline.UNKNOWN_ITEM
    known = pipeline._classification(pipeline.offline_classify("택배 상자"))["classification"]
    assert known["minor_category"]


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


# -- model allow-lists (functions/common/llmmodels.py) -----------------------------------------------


def test_allow_lists_read_from_the_environment_with_the_defaults_first() -> None:
    from eco2.core.settings import read_section
    from functions.common.llmmodels import ScanModels

    models = read_section(
        ScanModels,
        {"LLM_VISION_MODEL": "gpt-4o", "LLM_VISION_MODELS": " gpt-4o-mini , gpt-4o ,", "LLM_ANSWER_MODELS": ""},
    )
    assert models.allowed("vision") == ("gpt-4o", "gpt-4o-mini")
    assert models.allowed("answer") == ("gpt-4o-mini",)
    assert models.offered() == ("gpt-4o", "gpt-4o-mini")
    assert models.pick("vision", "gpt-4o-mini") == "gpt-4o-mini"
    assert models.pick("vision", None) == "gpt-4o"
    assert models.pick("answer", "gpt-4o") == "gpt-4o-mini"  # not allowed for the answer: its default
    assert models.pick("vision", "o1-pro") == "gpt-4o"


@pytest.mark.parametrize(
    "env",
    [{"LLM_VISION_MODELS": "gpt-4o,../../v1/files"}, {"LLM_ANSWER_MODEL": "a b"}, {"LLM_VISION_MODEL": "x\r\ny"}],
)
def test_a_model_name_that_is_not_one_is_a_startup_error(env: dict[str, str]) -> None:
    from eco2.core.settings import SettingsError, read_section
    from functions.common.llmmodels import ScanModels

    with pytest.raises(SettingsError) as problem:
        read_section(ScanModels, env)
    assert next(iter(env)) in str(problem.value)


def test_the_llm_never_sends_an_unlisted_model() -> None:
    from functions.common.llmmodels import ScanModels
    from functions.scan_worker.llm import LLM

    llm = LLM(None, models=ScanModels(llm_vision_models=("gpt-4o",)), timeout=1, attempts=1)
    assert llm.model_for("vision", "gpt-4o") == "gpt-4o"
    assert llm.model_for("answer", "gpt-4o") == "gpt-4o-mini"
    assert llm.model_for("vision", "../../v1/files") == "gpt-4o-mini"
    assert llm.model_for("vision", None) == "gpt-4o-mini"


# -- image keys in URLs (functions/common/uploads.py) ------------------------------------------------

HEX = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (f"/eco2-images/scan/{HEX}.jpg", f"scan/{HEX}.jpg"),
        (f"/chat/{HEX}.webp", f"chat/{HEX}.webp"),
        (f"/scan/{HEX}.jpg/", None),
        (f"/scan/{HEX}.jpg.exe", None),
        (f"/scan/{HEX.upper()}.jpg", None),
        (f"/avatar/{HEX}.jpg", None),
        (f"/scan/{HEX}.svg", None),
        ("/scan/abc.jpg", None),
        (f"/scan%2F{HEX}.jpg", None),
    ],
)
def test_the_key_a_url_path_ends_with(path: str, key: str | None) -> None:
    from functions.common.uploads import key_in_path

    assert key_in_path(path) == key


class FakeProgress:
    """The pipeline's progress port, in memory: the stages it reports, what was written at each
    flush, and the result it stores."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.written: list[list[tuple[str, str]]] = []
        self.results: list[dict[str, object]] = []
        self._pending: list[tuple[str, str]] = []

    def event(self, stage: str, status: str) -> None:
        self.events.append((stage, status))
        self._pending.append((stage, status))

    def flush(self) -> None:
        if self._pending:
            self.written.append(self._pending)
            self._pending = []

    def finish(self, result: dict[str, object]) -> dict[str, object]:
        self.events.append(("done", str(result["status"])))
        self.written.append([*self._pending, ("done", str(result["status"]))])
        self._pending = []
        self.results.append(result)
        return result


def _offline() -> LLM:
    return LLM(None, models=ScanModels(), timeout=1, attempts=1)


def test_stages_are_reported_in_order_and_the_result_is_stored_last() -> None:
    progress = FakeProgress()
    result = pipeline.run(progress, _offline(), "job-1", "https://cdn/x.jpg", "다 마신 생수병", None)
    stages = [(stage, status) for stage, status in progress.events]
    assert stages == [
        (s, status) for s in ("vision", "rule", "answer", "reward") for status in ("started", "completed")
    ] + [("done", "completed")]
    assert progress.results == [result] and result["reward"] is not None  # a clean PET bottle is rewarded
    # written before each model call and at the end: what happened in between travels together
    assert progress.written == [
        [("vision", "started")],
        [("vision", "completed"), ("rule", "started"), ("rule", "completed"), ("answer", "started")],
        [("answer", "completed"), ("reward", "started"), ("reward", "completed"), ("done", "completed")],
    ]


def test_an_llm_failure_ends_the_stage_failed_and_stores_a_failed_result() -> None:
    class Failing(LLM):
        def classify(self, *args: object, **kwargs: object) -> dict[str, object] | None:
            raise pipeline.LLMError("모델이 답하지 않았어요.")

    progress = FakeProgress()
    client = object()  # not offline: the vision stage calls classify
    result = pipeline.run(
        progress, Failing(client, models=ScanModels(), timeout=1, attempts=1), "job-2", "u", None, None
    )
    assert progress.events == [("vision", "started"), ("vision", "failed"), ("done", "failed")]
    assert result["status"] == "failed" and result["reward"] is None and "답하지" in str(result["error"])
