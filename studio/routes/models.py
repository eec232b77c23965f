"""Models: the start model and the fine-tuned ones (list, choose for the next jobs, delete)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter

from inference_core.predictor import build_predictor
from model.variants import matching_variant
from studio.errors import workspace_writes
from studio.schemas import ChooseModel, ModelChosen, ModelDeleted, ModelList
from studio.state import StudioDep

router = APIRouter(tags=["models"])


@router.get("/api/models", response_model=ModelList)
def models(studio: StudioDep):
    """Every model: usable ones (the start model, runs that finished with weights) and the others
    (cancelled, failed, interrupted runs: with their size on disk, to delete)."""
    return {"models": studio.models.entries(studio.current)}


@router.post("/api/model", response_model=ModelChosen)
async def choose_model(body: ChooseModel, studio: StudioDep):
    """The model the next jobs use (a fine-tuned one with the config its sidecar records; "start":
    the command line's checkpoint and config, variant included)."""
    chosen = studio.models.resolve(body.name)
    old = studio.runner.predictor
    predictor = await asyncio.to_thread(
        build_predictor, chosen.path, chosen.config, old.device, old.amp, old.max_objects_per_batch, size=old.size,
        overlap_io=old.overlap_io, compile=old.compile)
    studio.runner.switch_model(predictor, chosen.path)
    studio.current = body.name
    return {"model": body.name, "path": chosen.path, "variant": matching_variant(chosen.config),
            "backbone": chosen.config.backbone_type}


@router.delete("/api/models/{name}", response_model=ModelDeleted)
def delete_model(name: str, studio: StudioDep):
    """Deletes a fine-tuned model's folder (409 while its run is queued or running, or while it is current)."""
    holder = studio.runner.holder(f"model:{name}")
    with workspace_writes(studio.workspace.root):
        freed = studio.models.delete(name, studio.current, holder.id if holder else None)
    return {"model": name, "freed_bytes": freed}
