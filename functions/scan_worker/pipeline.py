"""The scan pipeline: vision -> rules -> answer -> reward, with progress at each stage.

Free of transport: it gets a job store and an LLM, returns the result. Each stage emits
`started`/`completed` to the job's stream; the final result is stored before `done`. An LLM that
times out or fails after every retry ends the job `failed` with a readable error; an answer that
is not valid JSON, or is off the taxonomy, is corrected or falls back to 미분류 — never a crash.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol

from functions.common import lexicon, recycling
from functions.common.characters import Character, catalog
from functions.common.scanjobs import StageStatus, failed_result
from functions.scan_worker.llm import LLM, LLMError, Vision

log = logging.getLogger("eco2.scan.pipeline")
RECYCLABLE = "재활용폐기물"
UNCLASSIFIED = "미분류"
OFFLINE_NOTE = "OpenAI 키가 설정되지 않아, 사진 대신 입력한 설명을 분류표와 맞춰 보는 오프라인 분류기가 답했어요."
OFFLINE_NO_WORDS_NOTE = (
    "OpenAI 키가 설정되지 않아 사진을 볼 수 없어요. "
    "물건 이름을 설명에 적어 주시면 오프라인 분류기가 분류표에서 찾아 드려요."
)
UNKNOWN_ITEM = "분류하기 어려운 물건"  # the app says "이 쓰레기는 {minor_category}으로 보이네요"


def _classification(vision: Vision) -> dict[str, Any]:
    return {
        "classification": {
            "major_category": vision.major,
            "middle_category": vision.middle,
            # never empty: the app puts it in a sentence
            "minor_category": vision.minor or (vision.middle if vision.major != UNCLASSIFIED else UNKNOWN_ITEM),
        },
        "situation_tags": list(vision.tags),
    }


def vision_stage(llm: LLM, image_url: str, user_input: str | None, model: str | None) -> Vision:
    tax = recycling.taxonomy()
    tags = recycling.situation_tags()
    if llm.offline:
        return offline_classify(user_input)
    raw = llm.classify(image_url, user_input, model, majors=tax.majors(), middles=tax.all_middles(), tags=list(tags))
    if raw is None:
        return Vision(UNCLASSIFIED, UNCLASSIFIED, "", [], note="분류 결과를 읽을 수 없어 미분류로 처리했어요.")
    fixed = tax.normalise(
        str(raw.get("major_category", "")), str(raw.get("middle_category", "")), str(raw.get("minor_category", ""))
    )
    raw_tags = raw.get("situation_tags") or []
    known = [t for t in raw_tags if isinstance(t, str) and t in tags]
    note = None
    if (fixed.major, fixed.middle) != (raw.get("major_category"), raw.get("middle_category")):
        note = (
            "분류표에 없는 답을 바로잡았어요."
            if fixed.major != UNCLASSIFIED
            else "분류표에 없는 답이라 미분류로 처리했어요."
        )
    return Vision(fixed.major, fixed.middle, fixed.minor, known, note=note)


_keywords = lexicon.keywords  # (word, major, middle), longest first: functions/common/data/keywords.yaml


def offline_classify(user_input: str | None) -> Vision:
    """No model: match the user's words against everyday words and the taxonomy's own names."""
    text = re.sub(r"\s+", "", user_input or "")
    tags = [t for t in recycling.situation_tags() if _mentions(text, t)]
    found = lexicon.find_item(user_input)
    note = OFFLINE_NOTE if text else OFFLINE_NO_WORDS_NOTE
    if found is None:
        return Vision(UNCLASSIFIED, UNCLASSIFIED, "", tags, note=note)
    return Vision(found.major, found.middle, found.minor, tags, note=note)


def _mentions(text: str, tag: str) -> bool:
    """A tag such as 내용물_있음 is mentioned when all its words appear in the text."""
    words = [w for w in re.split(r"[_()]|OR", tag) if w]
    return bool(words) and all(w in text for w in words)


def rules_stage(vision: Vision) -> recycling.Rules | None:
    return recycling.rules_for(vision.major, vision.middle)


def _rules_view(rules: recycling.Rules | None) -> dict[str, Any] | None:
    if rules is None:
        return None
    return {
        "key": rules.key,
        "category": rules.category,
        "middle_category": rules.middle,
        "targets": list(rules.targets),
        "common_steps": list(rules.common_steps),
        "excluded": dict(rules.excluded),
    }


def deterministic_steps(vision: Vision, rules: recycling.Rules | None) -> list[str]:
    if rules is None:
        return ["분류가 확실하지 않아요. 지자체 안내를 확인하거나 더 가까이에서 다시 찍어 주세요."]
    steps = list(rules.item_steps.get(vision.minor, [])) or list(rules.common_steps)
    return steps or ["내용물을 비우고 종류에 맞는 수거함에 넣어 주세요."]


def answer_stage(
    llm: LLM,
    vision: Vision,
    rules: recycling.Rules | None,
    lacking: list[str],
    user_input: str | None,
    model: str | None,
) -> tuple[list[str], str, str | None]:
    """(disposal steps, short answer, note). Offline or unusable model output -> built from the rules."""
    fallback_steps = deterministic_steps(vision, rules)
    fallback_answer = short_answer(vision, lacking)
    if llm.offline:
        return fallback_steps, fallback_answer, None
    context = {
        "classification": _classification(vision),
        "rules": _rules_view(rules),
        "insufficiencies": lacking,
        "user_input": user_input,
    }
    raw = llm.answer(context, model)
    steps = raw.get("disposal_steps") if raw else None
    text = raw.get("user_answer") if raw else None
    if not isinstance(steps, list) or not all(isinstance(s, str) and s.strip() for s in steps) or not steps:
        return fallback_steps, fallback_answer, "답변 형식이 올바르지 않아 규칙으로 안내를 만들었어요."
    if not isinstance(text, str) or not text.strip():
        text = fallback_answer
    return [s.strip() for s in steps][:10], _three_sentences(text.strip()), None


def _three_sentences(text: str) -> str:
    parts = re.split(r"(?<=[.!?。])\s+", text)
    return " ".join(parts[:3])


def short_answer(vision: Vision, lacking: list[str]) -> str:
    if vision.major == UNCLASSIFIED:
        return "어떤 물건인지 확실하지 않아요. 물건이 잘 보이게 다시 찍어 주시면 더 정확히 알려 드릴게요."
    what = vision.minor or vision.middle
    if lacking:
        return f"{what}은(는) {vision.middle}(으)로 배출해요. 버리기 전에 {lacking[0]}"
    return f"{what}은(는) {vision.middle}(으)로 배출하면 돼요. 아래 순서대로 해 주세요!"


def reward_stage(vision: Vision, rules: recycling.Rules | None, lacking: list[str]) -> Character | None:
    """Granted only for a recyclable with a middle category, known rules, and nothing left to fix."""
    if vision.major != RECYCLABLE or not vision.middle or vision.middle == UNCLASSIFIED:
        return None
    if rules is None or lacking:
        return None
    return catalog().for_category(vision.middle)


class Progress(Protocol):
    """What the pipeline needs of its job's progress (functions/common/scanjobs.JobProgress in
    Redis; an in-memory fake in the unit tests of the pipeline's rules). Events are noted as they
    happen and written at `flush` (before each model call) and at `finish`."""

    def event(self, stage: str, status: StageStatus) -> None: ...

    def flush(self) -> None: ...

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Write the result with `done`; returns the job's final result (an earlier one stands)."""
        ...


def run(
    progress: Progress, llm: LLM, job_id: str, image_url: str, user_input: str | None, model: str | None
) -> dict[str, Any]:
    stage = "vision"
    try:
        progress.event("vision", "started")
        progress.flush()
        vision = vision_stage(llm, image_url, user_input, model)
        progress.event("vision", "completed")
        stage = "rule"
        progress.event("rule", "started")
        rules = rules_stage(vision)
        progress.event("rule", "completed")
        stage = "answer"
        progress.event("answer", "started")
        progress.flush()
        lacking = recycling.insufficiencies(vision.tags)
        steps, text, answer_note = answer_stage(llm, vision, rules, lacking, user_input, model)
        progress.event("answer", "completed")
        stage = "reward"
        progress.event("reward", "started")
        character = reward_stage(vision, rules, lacking)
        progress.event("reward", "completed")
    except LLMError as exc:
        progress.event(stage, "failed")
        return progress.finish(failed_result(job_id, str(exc)))
    notes = [n for n in (vision.note, answer_note) if n]
    reward = None
    if character is not None:
        reward = {
            "name": character.name,
            "dialog": character.dialog,
            "match_reason": f"{vision.middle}을(를) 올바르게 분리배출했어요.",
            "type": character.type,
            "code": character.code,
        }
    result = {
        "task_id": job_id,
        "status": "completed",
        "message": " ".join(["분석이 끝났어요.", *notes]),
        "pipeline_result": {
            "classification_result": _classification(vision),
            "disposal_rules": _rules_view(rules),
            "final_answer": {
                "disposal_steps": {f"단계{i}": step for i, step in enumerate(steps, start=1)},
                "insufficiencies": lacking,
                "user_answer": text,
            },
            "classifier": "offline" if llm.offline else "llm",
        },
        "reward": reward,
        "error": None,
    }
    return progress.finish(result)
