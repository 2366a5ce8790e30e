"""scan-worker function: one CloudEvent handler (decode → pipeline → reply event)."""

from __future__ import annotations

from typing import Any

from eco2 import Context, Event, Function, OutEvent
from eco2.core.settings import Settings
from eventing.catalogue import SCAN_COMPLETED, SCAN_FAILED, SCAN_REQUESTED, ScanCompleted, ScanFailed, ScanRequested
from functions.common.llmmodels import ScanModels
from functions.common.scanjobs import JobStore
from functions.scan_worker import pipeline
from functions.scan_worker.llm import LLM

fn = Function(
    "scan-worker",
    uses=("redis", "openai"),
    description="Classify, look up rules, answer, reward.",
    config=ScanModels,
)


@fn.on_startup
def _check_data(_clients: Any) -> None:
    from functions.common import recycling

    problems = recycling.validate()
    if problems:
        raise RuntimeError("recycling data is inconsistent: " + "; ".join(problems))


def _llm(client: Any, settings: Settings, models: ScanModels) -> LLM:
    """Per event (no I/O: a few attributes), so nothing outlives the client it wraps."""
    return LLM(client, models=models, timeout=settings.llm_timeout, attempts=settings.llm_max_attempts)


@fn.event(SCAN_REQUESTED, data=ScanRequested)
def on_scan_requested(ctx: Context, event: Event[ScanRequested]) -> OutEvent | None:
    """Run the pipeline once per job; the reply (scan.completed / scan.failed) goes back to the broker."""
    request = event.data
    store = JobStore(ctx.redis)
    job, done = store.get_with_result(request.job_id)
    if job is None:  # expired or never created: nothing to do, nothing to retry
        return None
    if done is None:
        llm = _llm(ctx.clients.openai, ctx.settings, ctx.config)
        progress = store.progress(request.job_id)
        done = pipeline.run(progress, llm, request.job_id, request.image_url, request.user_input, request.model)
    return reply(request, done)


def reply(request: ScanRequested, result: dict[str, Any]) -> OutEvent:
    """The same reply for the same job, with a stable id, however often it is computed."""
    if result["status"] != "completed":
        return OutEvent(
            type=SCAN_FAILED,
            id=f"{request.job_id}-failed",
            subject=request.job_id,
            data=ScanFailed(job_id=request.job_id, user_id=request.user_id, error=result["error"] or ""),
        )
    classification = result["pipeline_result"]["classification_result"]["classification"]
    reward = result.get("reward") or {}
    return OutEvent(
        type=SCAN_COMPLETED,
        id=f"{request.job_id}-completed",
        subject=request.job_id,
        data=ScanCompleted(
            job_id=request.job_id,
            user_id=request.user_id,
            major_category=classification["major_category"],
            middle_category=classification["middle_category"],
            reward_character_code=reward.get("code"),
        ),
    )
