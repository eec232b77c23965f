"""Jobs: propagation and fine-tuning runs (start, state, events, cancel)."""
from __future__ import annotations

import asyncio
import json
import os

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from studio.errors import workspace_writes
from studio.finetune import MAX_QUEUED, FinetuneJob, new_finetune_job
from studio.job import FINISHED
from studio.schemas import FinetunePlan, FinetuneRequest, JobStarted, JobState, PropagateRequest
from studio.state import Studio, StudioDep
from studio.store import NotFound

router = APIRouter(tags=["jobs"])


def described(studio: Studio, job_id: str) -> dict:
    """A job as it is now, or as an earlier run of the studio recorded it; NotFound otherwise."""
    job = studio.runner.get(job_id)
    state = job.describe() if job else studio.workspace.job_record(job_id)
    if not state:
        raise NotFound(f"no job {job_id!r}")
    state.pop("frames", None)
    return state


@router.post("/api/sessions/{session_id}/propagate", response_model=JobStarted)
def propagate(session_id: str, body: PropagateRequest, studio: StudioDep):
    session = studio.workspace.session(session_id)
    frame = session.frame_index(body.frame)
    with workspace_writes(studio.workspace.root):
        job = studio.runner.submit(session, frame, body.direction, body.until)
    return {"job": job.id, "kind": job.kind, "total": job.total, "note": job.note}


@router.get("/api/jobs/{job_id}", response_model=JobState)
def job_state(job_id: str, studio: StudioDep):
    return described(studio, job_id)


@router.delete("/api/jobs/{job_id}", response_model=JobState)
def cancel_job(job_id: str, studio: StudioDep):
    job = studio.runner.get(job_id)
    if not job:
        raise NotFound(f"no running or queued job {job_id!r}")
    studio.runner.cancel(job)
    return job.describe()


@router.get("/api/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "the job's state (JobState) each "
                             "time it changes, as server-sent events, to a finished state"}})
async def job_events(job_id: str, studio: StudioDep):
    described(studio, job_id)

    async def stream():
        last = None
        while True:
            try:
                state = described(studio, job_id)
            except NotFound:
                return
            if state != last:
                yield f"data: {json.dumps(state)}\n\n"
                last = state
            if state["state"] in FINISHED:
                return
            await asyncio.sleep(0.25)
    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _plan(studio: Studio, body: FinetuneRequest) -> FinetuneJob:
    job = new_finetune_job(studio.workspace, body.sessions, body.minutes)
    job.trainer = studio.trainer
    return job


@router.post("/api/finetune/plan", response_model=FinetunePlan)
def finetune_plan(body: FinetuneRequest, studio: StudioDep):
    """What a fine-tune of these sessions would do, before it starts: which session is held out for
    validation (the last by id, when there are two or more) and which are trained on."""
    job = _plan(studio, body)
    return {"sessions": job.sessions, "held_out": job.held_out,
            "trains_on": [s for s in job.sessions if s not in job.held_out], "minutes": job.minutes,
            "starts_from": studio.current}


@router.post("/api/finetune", response_model=JobStarted,
             responses={429: {"description": f"{MAX_QUEUED} fine-tuning jobs are already queued or running"}})
def finetune(body: FinetuneRequest, studio: StudioDep):
    if studio.runner.checkpoint is None or not os.path.isfile(studio.runner.checkpoint):
        raise NotFound("this studio has no checkpoint file to fine-tune from")
    job = _plan(studio, body)
    with workspace_writes(studio.workspace.root):
        studio.runner.enqueue(job, limit=(job.kind, MAX_QUEUED))
    return {"job": job.id, "kind": job.kind, "total": job.total, "model": job.model, "held_out": job.held_out}
