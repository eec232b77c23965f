"""The models the studio can propagate with: ``start`` (the checkpoint and the whole ModelConfig the
command line gave, variant included) and the workspace's fine-tuned ones (``models/<name>/``, their
config from the sidecar the trainer wrote beside ``finetuned.pth``).

A fine-tuned model is offered (``usable``) only once its run finished with weights (its job record
says ``done``); cancelled, failed and interrupted runs are listed as such with their size on disk,
and can be deleted. A folder without a job record (copied in by hand) is offered when it holds
weights; one left by an older studio is read from its ``info.json``.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from dataset.workspace import ModelFolder
from model.checkpoint import CheckpointError
from model.presets import ModelConfig
from model.variants import matching_variant, read_sidecar, resolve_config, sidecar_path
from studio.finetune import FinetuneJob
from studio.store import Conflict, NotFound, Workspace
from util.errors import InputError

START = "start"


class BadModel(InputError):
    """A model folder whose files cannot be used (answered 422, naming the file)."""


@dataclass(frozen=True)
class StartModel:
    path: str
    config: ModelConfig


def sidecar_config(weights: str) -> ModelConfig:
    """The ModelConfig a fine-tuned model's sidecar records (read and checked by
    ``model.variants.read_sidecar``); BadModel naming the sidecar otherwise."""
    path = sidecar_path(weights)
    if not os.path.isfile(path):
        raise BadModel(f"{path}: missing: the model's flags are unknown (the trainer writes it beside {os.path.basename(weights)})")
    try:
        recorded = read_sidecar(weights)
    except CheckpointError as exc:
        raise BadModel(str(exc)) from None
    if recorded is None:
        raise BadModel(f"{path}: not a model sidecar (a JSON object with a \"model\" object of model flags)")
    return resolve_config(None, recorded["model"])


class ModelCatalog:
    """The start model and the workspace's fine-tuned models."""

    def __init__(self, workspace: Workspace, start: StartModel):
        self.workspace, self.start = workspace, start

    def _records(self) -> dict[str, dict]:
        """model name -> the newest record of the fine-tuning job that made it."""
        out: dict[str, dict] = {}
        for _, record in self.workspace.job_records():
            if record.get("kind") == FinetuneJob.kind and isinstance(record.get("model"), str):
                if (record.get("started") or 0) >= (out.get(record["model"], {}).get("started") or 0):
                    out[record["model"]] = record
        return out

    def _folder_state(self, folder: ModelFolder, record: dict | None) -> tuple[str, dict]:
        if record is None:
            try:
                with open(os.path.join(folder.root, "info.json")) as f:
                    record = json.load(f)
            except (OSError, ValueError):
                record = None
            if not isinstance(record, dict):
                record = {"state": "done" if os.path.isfile(folder.weights) else "incomplete"}
            elif record.get("state") in ("queued", "running"):
                record = {**record, "state": "interrupted"}
        return record.get("state", "incomplete"), record

    def entries(self, current: str) -> list[dict]:
        config = self.start.config
        found = [{"name": START, "state": "done", "usable": True, "current": current == START, "path": self.start.path,
                  "variant": matching_variant(config), "backbone": config.backbone_type, "size_bytes": None,
                  "job": None, "sessions": None, "held_out": None, "val_jf": None, "val_jf_before": None, "error": None}]
        records = self._records()
        for name in self.workspace.layout.model_names():
            folder = self.workspace.layout.model(name)
            state, record = self._folder_state(folder, records.get(name))
            usable = state == "done" and os.path.isfile(folder.weights)
            found.append({"name": name, "state": state, "usable": usable, "current": current == name,
                          "path": folder.weights if usable else None, "variant": None, "backbone": None,
                          "size_bytes": folder.size_bytes(), "job": record.get("job"), "sessions": record.get("sessions"),
                          "held_out": record.get("held_out"), "val_jf": record.get("val_jf"),
                          "val_jf_before": record.get("val_jf_before"), "error": record.get("error")})
        return found

    def resolve(self, name: str) -> StartModel:
        """(weights, config) of a usable model: NotFound, Conflict (not usable) or BadModel otherwise."""
        if name == START:
            return self.start
        entry = next((m for m in self.entries("") if m["name"] == name), None)
        if entry is None:
            raise NotFound(f"no model {name!r} (GET /api/models lists them)")
        if not entry["usable"]:
            raise Conflict(f"model {name} cannot be used: its run is {entry['state']}"
                           + (f" ({entry['error']})" if entry.get("error") else ""))
        folder = self.workspace.layout.model(name)
        return StartModel(folder.weights, sidecar_config(folder.weights))

    def delete(self, name: str, current: str, held_by: str | None) -> int:
        """Removes a fine-tuned model's folder -> the bytes freed. Refused for the start model, the
        current one and one whose run is queued or running (``held_by``: that job's id)."""
        if name == START:
            raise InputError("the start model is the studio's --checkpoint: it is not deleted from here")
        if held_by is not None:
            raise Conflict(f"model {name} is being made by job {held_by}: cancel it first (DELETE /api/jobs/{held_by})")
        if name not in self.workspace.layout.model_names():
            raise NotFound(f"no model {name!r} (GET /api/models lists them)")
        if name == current:
            raise Conflict(f"model {name} is the current model: switch to another first")
        folder = self.workspace.layout.model(name)
        size = folder.size_bytes()
        shutil.rmtree(folder.root)
        return size
