"""Answering one chat job, free of CloudEvent headers: context → (photo) → streamed answer →
stored exchange → `done`. Exactly one answer per job: the job's lease keeps a concurrent delivery
out, the stored messages (unique per job and role) make a redelivery replay the same `done`. A try
still running when its job ended (failed by the dead-letter sink) stops at its next write: the job
store writes nothing after the first terminal event (functions/common/chatjobs.py)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from eco2.core.errors import Conflict
from eventing.catalogue import ChatRequested
from functions.chat_worker import grounding
from functions.chat_worker.config import WorkerConfig
from functions.chat_worker.llm import PERSONA, ChatLLM, ChatLLMError
from functions.common import conversations, recycling
from functions.common.chatjobs import TERMINAL, ChatJobs, recovery
from functions.common.conversations import Conversation, Message

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("eco2.chat.worker")
OFFLINE_MARK = "(오프라인 답변) OpenAI 키가 설정되지 않아, 이코가 프로젝트의 배출 규칙만으로 답해요."


@dataclass(frozen=True)
class Stored:
    conversation_id: str
    user_message: str
    assistant_message: str
    assistant_message_created_at: str
    answer: str

    def done(self) -> dict[str, Any]:
        return {
            "status": "completed",
            "result": {
                "answer": self.answer,
                "persistence": {
                    "conversation_id": self.conversation_id,
                    "user_message": self.user_message,
                    "assistant_message": self.assistant_message,
                    "assistant_message_created_at": self.assistant_message_created_at,
                },
            },
        }


Locate = Callable[[float, float], list[grounding.Center] | None]


class JobEnded(Exception):
    """The job ended (or expired) while this try was answering it: a write was refused."""


def _written(entry_id: str | None) -> str:
    if entry_id is None:
        raise JobEnded
    return entry_id


def answer(
    session: Session,
    jobs: ChatJobs,
    llm: ChatLLM,
    config: WorkerConfig,
    request: ChatRequested,
    locate: Locate,
    sleep: Callable[[float], None] = time.sleep,
) -> Stored | None:
    """The stored exchange of the job (answering it first if needed); None when it ended without one."""
    job_id = request.job_id
    job = jobs.get(job_id)
    if job is None:  # expired or never created: nothing to answer, nothing to retry
        return None
    found = stored(session, job_id)
    if found is not None:
        _ensure_done(jobs, job_id, found)
        return found
    if job.status == "failed":
        return None
    holder = uuid.uuid4().hex
    if not jobs.lease(job_id, holder, config.chat_lease_seconds):
        raise Conflict("This answer is being written by another delivery.", "CHAT_IN_PROGRESS")
    try:
        entries = jobs.entries(job_id)
        if any(e.event in TERMINAL for e in entries):
            return None
        if any(e.event == "answer" and e.json().get("status") == "completed" for e in entries):
            # the answer was streamed in full but not stored (the store failed): store what was shown
            text = recovery(entries)["accumulated"].strip()
            result = persist(session, request, text, grounding.item_of(request.message))
            _ensure_done(jobs, job_id, result)
            return result
        if any(e.event == "token" for e in entries):
            # an earlier delivery died half-way: a new answer would not continue the text already shown
            _fail(jobs, job_id, "ANSWER_INTERRUPTED", "답변을 만드는 도중 멈췄어요. 같은 질문을 다시 보내 주세요.")
            return None
        return _run(session, jobs, llm, config, request, locate, sleep)
    except ChatLLMError as exc:
        _fail(jobs, job_id, exc.code, str(exc))
        return None
    except JobEnded:
        log.warning("chat job ended while this try answered it; stopped", extra={"job_id": job_id})
        return None
    finally:
        jobs.release(job_id)


def _run(
    session: Session,
    jobs: ChatJobs,
    llm: ChatLLM,
    config: WorkerConfig,
    request: ChatRequested,
    locate: Locate,
    sleep: Callable[[float], None],
) -> Stored | None:
    job_id = request.job_id
    if not jobs.streaming(job_id):
        raise JobEnded
    try:
        chat = session.get(Conversation, uuid.UUID(request.chat_id))
    except ValueError:  # not an id chat gives out: answering cannot succeed, retrying neither
        chat = None
    if chat is None or str(chat.user_id) != request.user_id:
        _fail(jobs, job_id, "CHAT_NOT_FOUND", "대화를 찾을 수 없어요.")
        return None
    _written(jobs.stage(job_id, "context", "started"))
    history = recent(session, chat.id, config.chat_history_messages)
    session.commit()  # no transaction (and no pooled connection) held while the model streams
    g = ground(request, llm, config, locate, jobs)
    _written(jobs.stage(job_id, "context", "completed"))
    _written(jobs.stage(job_id, "answer", "started"))
    model = request.model if request.model in config.models else config.models[0]
    if llm.offline:
        pieces: Iterator[str] = offline_pieces(offline_answer(g, bool(request.image_url)), config, sleep)
    else:
        pieces = llm.stream(model, prompt(g, history, request.message), config.chat_max_tokens)
    parts: list[str] = []
    for seq, piece in enumerate(pieces, start=1):
        _written(jobs.token(job_id, piece, seq))  # a job failed meanwhile: stop listening to the model
        parts.append(piece)
    text = "".join(parts).strip()
    if not text:
        raise ChatLLMError("AI 모델이 빈 답을 보냈어요. 다시 질문해 주세요.", "EMPTY_ANSWER")
    _written(jobs.stage(job_id, "answer", "completed"))  # nothing stored for a job that failed meanwhile
    result = persist(session, request, text, g.item)
    _ensure_done(jobs, job_id, result)
    return result


def ground(
    request: ChatRequested, llm: ChatLLM, config: WorkerConfig, locate: Locate, jobs: ChatJobs
) -> grounding.Grounding:
    g = grounding.Grounding(item=grounding.item_of(request.message))
    if request.image_url:
        if llm.offline:
            g.notes.append("[사진] 오프라인이라 사진은 보지 못함: 설명한 글로만 답함.")
        else:
            _written(jobs.stage(request.job_id, "vision", "started"))
            seen = llm.classify(request.image_url, request.message)
            _written(jobs.stage(request.job_id, "vision", "completed"))
            if seen is not None and not seen.unclassified:
                g.photo = f"{seen.major} > {seen.middle}" + (f" ({seen.minor})" if seen.minor else "")
                g.item = g.item or seen
            else:
                g.photo = "사진 속 물건을 분류하지 못함: 더 자세한 설명이나 다시 찍은 사진을 부탁."
    if g.item is not None:
        g.rules = recycling.rules_for(g.item.major, g.item.middle)
    g.wants_place = grounding.asks_where(request.message)
    if g.wants_place and request.user_location is not None:
        g.located = True
        g.centers = locate(request.user_location.latitude, request.user_location.longitude)
    return g


def prompt(g: grounding.Grounding, history: list[Message], message: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": PERSONA}]
    context = grounding.context_text(g)
    if context:
        messages.append({"role": "system", "content": "이번 질문의 근거 자료:\n\n" + context})
    messages.extend({"role": m.role, "content": m.content} for m in history)
    messages.append({"role": "user", "content": message})
    return messages


def offline_answer(g: grounding.Grounding, has_image: bool) -> str:
    """No model: an answer built from the rules (and the nearby points), marked as such."""
    lines = [OFFLINE_MARK]
    if has_image:
        lines.append("사진은 볼 수 없어서 적어 주신 설명으로 안내할게요.")
    if g.item is not None and g.rules is not None:
        what = g.item.minor or g.item.middle
        lines.append(f"{what}{_josa(what, '은', '는')} {g.item.middle}{_josa(g.item.middle, '으로', '로')} 배출해요.")
        lines.extend(f"{i}. {s}" for i, s in enumerate(grounding.steps_for(g.rules, g.item.minor), start=1))
    elif g.item is not None:
        lines.append(f"{g.item.middle}{_josa(g.item.middle, '은', '는')} 지자체 안내에 따라 배출해 주세요.")
    elif not g.wants_place:
        lines.append("어떤 물건인지 알려 주시면 분리배출 방법을 알려 드릴게요. 예: '페트병 어떻게 버려?'")
    if g.wants_place:
        if not g.located:
            lines.append("위치 권한을 켜고 다시 물어보시면 가까운 수거 장소를 알려 드릴게요.")
        elif g.centers:
            lines.append("가까운 배출 장소예요:")
            lines.extend(f"- {c.name} ({c.distance_text}) {c.road_address}".rstrip() for c in g.centers)
        elif g.centers is None:
            lines.append("지금은 주변 장소를 찾지 못했어요. 지도 화면에서 찾아봐 주세요.")
        else:
            lines.append("주변에 등록된 수거 장소가 없어요.")
    return "\n".join(lines)


def _josa(word: str, with_final: str, without_final: str) -> str:
    """The particle that fits the word's last syllable (받침): 페트병은, 종이팩으로; 유리병으로 but 종이로."""
    last = word[-1:] or " "
    if not "가" <= last <= "힣":
        return f"{with_final}({without_final})"
    final = (ord(last) - ord("가")) % 28
    if with_final == "으로" and final == 8:  # ㄹ takes 로: 물로, 비닐로
        return without_final
    return with_final if final else without_final


def offline_pieces(text: str, config: WorkerConfig, sleep: Callable[[float], None]) -> Iterator[str]:
    """The offline answer still streams: a word (with the space after it) at a time."""
    word = ""
    for ch in text:
        word += ch
        if ch in " \n":
            yield word
            word = ""
            if config.chat_offline_token_delay:
                sleep(config.chat_offline_token_delay)
    if word:
        yield word


def recent(session: Session, chat_id: uuid.UUID, limit: int) -> list[Message]:
    if limit <= 0:
        return []
    rows = session.scalars(
        select(Message)
        .where(Message.conversation_id == chat_id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return list(rows)[::-1]


def stored(session: Session, job_id: str) -> Stored | None:
    rows = {m.role: m for m in session.scalars(select(Message).where(Message.job_id == job_id))}
    user, assistant = rows.get("user"), rows.get("assistant")
    if user is None or assistant is None:
        return None
    return Stored(
        conversation_id=str(assistant.conversation_id),
        user_message=str(user.id),
        assistant_message=str(assistant.id),
        assistant_message_created_at=assistant.created_at.isoformat(),
        answer=assistant.content,
    )


def persist(session: Session, request: ChatRequested, text: str, item: recycling.Classification | None) -> Stored:
    """The user's message and the answer, and the conversation's preview, count, time and title, in
    one transaction. A concurrent twin that stored first wins; its rows are returned."""
    now = datetime.now(UTC)
    asked = _parse_time(request.requested_at) or now
    if asked >= now:
        asked = now - timedelta(microseconds=1)
    chat_key = uuid.UUID(request.chat_id)
    user = Message(
        conversation_id=chat_key,
        role="user",
        content=request.message,
        image_url=request.image_url,
        job_id=request.job_id,
        created_at=asked,
    )
    assistant = Message(conversation_id=chat_key, role="assistant", content=text, job_id=request.job_id, created_at=now)
    try:
        session.add_all([user, assistant])
        session.flush()
        chat = session.get(Conversation, chat_key, with_for_update=True)
        assert chat is not None
        chat.message_count = chat.message_count + 2
        chat.last_message_at = now
        chat.activity_at = now
        chat.preview = conversations.preview(request.message, text)
        if not chat.title:
            chat.title = conversations.title(request.message, (item.minor or item.middle) if item else None)
        session.commit()
    except IntegrityError:
        session.rollback()
        found = stored(session, request.job_id)
        assert found is not None
        return found
    return Stored(
        conversation_id=request.chat_id,
        user_message=str(user.id),
        assistant_message=str(assistant.id),
        assistant_message_created_at=now.isoformat(),
        answer=text,
    )


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _ensure_done(jobs: ChatJobs, job_id: str, result: Stored) -> None:
    """`done` with the stored exchange, unless the job has ended already (a replay, or a job the
    dead-letter sink failed just before the exchange was stored: its `error` stands)."""
    jobs.append(job_id, "done", result.done())


def _fail(jobs: ChatJobs, job_id: str, code: str, message: str) -> None:
    if jobs.append(job_id, "error", {"error": code, "message": message}) is not None:
        log.warning("chat job failed", extra={"job_id": job_id, "code": code})
