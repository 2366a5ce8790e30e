"""The chat stream's reader rules (functions/common/chatjobs.py), the conversation's title and
preview, and the worker's grounding text: pure functions, no servers."""

from __future__ import annotations

import json

import pytest

from functions.chat_worker import grounding, service
from functions.chat_worker.config import WorkerConfig
from functions.common import conversations, recycling
from functions.common.chatjobs import Entry, is_stream_id, opening, recovery


def stage(i: int, name: str, status: str = "completed") -> Entry:
    return Entry(f"{i}-0", name, json.dumps({"job_id": "j", "stage": name, "status": status, "ts": "t"}))


def token(i: int, seq: int, text: str) -> Entry:
    return Entry(f"{i}-0", "token", json.dumps({"content": text, "seq": seq}, ensure_ascii=False))


def done(i: int) -> Entry:
    return Entry(f"{i}-0", "done", json.dumps({"status": "completed", "result": {"answer": "가나다"}}))


RUNNING = [stage(1, "queued"), stage(2, "context", "started"), token(3, 1, "가"), token(4, 2, "나")]
FINISHED = [*RUNNING, token(5, 3, "다"), stage(6, "answer"), done(7)]


def frames_of(frames: list[str]) -> list[tuple[str, str, object]]:
    out = []
    for f in frames:
        fields = dict(line.split(": ", 1) for line in f.strip().splitlines())
        out.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return out


def test_a_usable_id_resumes_right_after_it() -> None:
    frames, after, ended = opening(RUNNING, "3-0")
    assert [(i, e) for i, e, _ in frames_of(frames)] == [("4-0", "token")]
    assert after == "4-0" and ended is False


def test_the_last_id_seen_sends_nothing_more_and_follows() -> None:
    frames, after, ended = opening(RUNNING, "4-0")
    assert frames == [] and after == "4-0" and not ended


@pytest.mark.parametrize("last", [None, "", "garbage", "99-0", "3-x"])
def test_no_usable_id_gets_the_accumulated_text_first(last: str | None) -> None:
    frames, after, ended = opening(RUNNING, last)
    [(frame_id, event, data)] = frames_of(frames)
    assert event == "token_recovery" and frame_id == "4-0" and after == "4-0" and not ended
    assert data == {"accumulated": "가나", "last_seq": 2, "completed": False}


def test_a_finished_job_replays_its_end() -> None:
    frames, after, ended = opening(FINISHED, None)
    parsed = frames_of(frames)
    assert [(i, e) for i, e, _ in parsed] == [("6-0", "token_recovery"), ("7-0", "done")]
    assert parsed[0][2] == {"accumulated": "가나다", "last_seq": 3, "completed": True}
    assert after == "7-0" and ended


def test_a_reconnect_after_the_end_sends_nothing_twice() -> None:
    frames, _after, ended = opening(FINISHED, "7-0")
    assert frames == [] and ended
    frames, _after, ended = opening(FINISHED, "5-0")
    assert [e for _, e, _ in frames_of(frames)] == ["answer", "done"] and ended


def test_recovery_orders_tokens_by_seq_and_an_error_is_not_completed() -> None:
    shuffled = [token(2, 2, "b"), token(1, 1, "a")]
    assert recovery(shuffled) == {"accumulated": "ab", "last_seq": 2, "completed": False}
    failed = [*RUNNING, Entry("9-0", "error", json.dumps({"error": "X", "message": "m"}))]
    assert recovery(failed)["completed"] is False
    assert recovery([]) == {"accumulated": "", "last_seq": 0, "completed": False}


def test_stream_ids() -> None:
    assert is_stream_id("1700000000000-0") and is_stream_id("5")
    assert not is_stream_id("") and not is_stream_id(None) and not is_stream_id("a-1") and not is_stream_id("1-")


def test_title_and_preview() -> None:
    assert conversations.title("우유팩 어떻게 버려?", "우유팩") == "우유팩 분리배출"
    assert conversations.title("안녕 이코") == "안녕 이코"
    long = "오늘 집 정리를 하다가 오래된 물건이 많이 나왔는데 하나씩 어떻게 버려야 하는지 알려 줄래?"
    title = conversations.title(long)
    assert title.endswith("…") and len(title) <= conversations.TITLE_CHARS + 1 and long.startswith(title[:-1])
    preview = conversations.preview("질문\n입니다", "답 " * 100)
    assert len(preview) == 100 and "\n" not in preview and preview.startswith("질문 입니다 답")


def test_the_item_asked_about_and_its_rules_text() -> None:
    item = grounding.item_of("다 마신 생수병 어떻게 버려?")
    assert item is not None and (item.major, item.middle, item.minor) == ("재활용폐기물", "무색페트병", "생수병")
    rules = recycling.rules_for(item.major, item.middle)
    assert rules is not None
    text = grounding.rules_text(rules, item.minor)
    assert "[배출 규칙: 재활용폐기물 > 무색페트병]" in text
    assert all(step in text for step in grounding.steps_for(rules, item.minor))
    assert grounding.item_of("오늘 날씨 어때?") is None


@pytest.mark.parametrize(
    ("text", "where"), [("근처 수거함 어디야?", True), ("가까운 제로웨이스트 가게", True), ("페트병 버리는 법", False)]
)
def test_where_questions(text: str, where: bool) -> None:
    assert grounding.asks_where(text) is where


def test_offline_answer_is_marked_built_from_the_rules_and_streams_word_by_word() -> None:
    g = grounding.Grounding(item=grounding.item_of("우유팩"))
    assert g.item is not None
    g.rules = recycling.rules_for(g.item.major, g.item.middle)
    assert g.rules is not None
    text = service.offline_answer(g, has_image=False)
    assert text.startswith(service.OFFLINE_MARK) and g.rules.common_steps[0] in text
    assert "우유팩은 종이팩으로 배출해요." in text  # particles fit the words (받침)
    slept: list[float] = []
    pieces = list(service.offline_pieces(text, WorkerConfig(chat_offline_token_delay=0.01), slept.append))
    assert "".join(pieces) == text and len(pieces) > 5 and slept and all(s == 0.01 for s in slept)
    nowhere = grounding.Grounding(wants_place=True)
    assert "위치 권한" in service.offline_answer(nowhere, has_image=False)
    located = grounding.Grounding(wants_place=True, located=True, centers=[grounding.Center("가게", "길 1", "1.2km")])
    assert "- 가게 (1.2km) 길 1" in service.offline_answer(located, has_image=False)


def test_worker_config_lists() -> None:
    config = WorkerConfig(
        chat_models=" gpt-4o-mini , gpt-4o ,", location_url="", eco2_public_url="http://127.0.0.1:8000/"
    )
    assert config.models == ("gpt-4o-mini", "gpt-4o") and config.location_base == "http://127.0.0.1:8000"
    assert WorkerConfig(location_url="http://location.eco2.svc.cluster.local").location_base.endswith("cluster.local")


def test_declaring_chat_imports_nothing_heavy() -> None:
    """Cold start: the chat function never imports openai, boto3 or pika; the worker imports openai
    only when it answers."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, functions.chat.app, functions.chat_worker.app;"
        "print(','.join(m for m in ('boto3','openai','pika','kubernetes') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
