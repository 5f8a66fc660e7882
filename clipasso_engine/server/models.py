"""Request and response bodies of the HTTP API (they are its documentation in /openapi.json)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..limits import MAX_STROKES
from ..settings import SketchSettings
from ..strokes import Stroke

JobState = Literal["queued", "running", "done", "failed", "cancelled"]


class JobRequest(BaseModel):
    """A sketch to make. Settings left out take the engine's defaults (preset ``auto``: ``fast`` on a CPU engine,
    ``standard`` on a GPU one)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(..., description="the photo: base64 of a PNG, JPEG, WebP, GIF (first frame), BMP or TIFF file (a data: URI is accepted)")
    settings: SketchSettings = Field(default_factory=SketchSettings, description="SketchSettings fields")
    init_strokes: Optional[list[Stroke]] = Field(
        None, max_length=MAX_STROKES, description="start from these strokes (photo pixels) instead of the saliency start"
    )
    locked: list[int] = Field(default_factory=list, max_length=MAX_STROKES, description="indices of init_strokes that stay fixed")
    mask: Optional[str] = Field(None, description="foreground mask (white = keep), base64 image of the photo's size; for settings.mask")


class JobCreated(BaseModel):
    """The job's id. An identical job already queued or running is not started twice: its id comes
    back (``cached`` false), and the submitters share it (a cancel ends it for all)."""

    id: str
    state: JobState
    cached: bool = Field(description="true when an identical earlier job answered at once")


class JobStatus(BaseModel):
    """Where a job stands. Times are Unix seconds; ``iteration`` counts steps done of ``iterations``."""

    id: str
    state: JobState
    created: float
    started: Optional[float] = None
    finished: Optional[float] = None
    queue_position: Optional[int] = Field(None, description="jobs ahead of this one while queued (0: next)")
    iteration: int = 0
    iterations: int
    progress: float = Field(0.0, description="0 to 1")
    loss: Optional[float] = None
    clip_score: Optional[float] = Field(None, description="once a result is in: the main level's CLIP score (ViT-B/32 "
                                                          "cosine of sketch and photo, -1 to 1; docs/method.md §6)")
    eta_s: Optional[float] = Field(None, description="seconds until it ends at the pace this engine measured (a queued "
                                                     "job counts the jobs ahead of it); early stop may end it sooner; "
                                                     "null until the engine has measured a pace")
    elapsed_s: Optional[float] = None
    width: int = Field(description="photo width in pixels")
    height: int = Field(description="photo height in pixels")
    strokes: list[int] = Field(description="stroke count of each abstraction level")
    clip: str
    cached: bool = False
    cancel_requested: bool = False
    error: Optional[str] = Field(None, description="why the job failed, and what to do")
    error_kind: Optional[str] = Field(None, description="the kind of failure: settings, image, svg, weights, device, "
                                                         "os, internal (clients tell errors apart by it)")
    error_detail: Optional[dict[str, Any]] = Field(None, description="facts of the failure for clients, e.g. "
                                                                      "{missing: [RN101.pt], folder} for weights")
    has_result: bool = Field(False, description="true when /result answers: done, or cancelled with the best strokes so far")
    resumed_from: Optional[int] = Field(None, description="the step this job went on from after an engine restart")
    preview_svg: Optional[str] = Field(None, description="SVG of the current strokes (photo pixels); the sketch once done")
    regions: list[dict[str, Any]] = Field(default_factory=list, description="the job's drawn regions ({role, polygon} in "
                                                                           "photo pixels) with the preview; empty without it")


class JobList(BaseModel):
    jobs: list[JobStatus] = Field(description="newest first, without preview SVGs")


class ResultBody(BaseModel):
    """The strokes JSON (``SketchResult.to_json()``)."""

    width: int
    height: int
    levels: dict[str, list[Stroke]] = Field(description="stroke count → strokes, photo pixels")
    level_info: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seed: int
    loss: Optional[float]
    history: list[dict[str, Any]] = Field(default_factory=list)
    engine: dict[str, Any] = Field(default_factory=dict)


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    device: str = Field(description="where jobs with device 'auto' run")
    queued: int
    running: int
    decoding: int = Field(0, description="uploads being decoded and checked right now")
    max_queued: int
    clip: str = Field(description="default CLIP model for the loss")
    saliency_clip: str = Field(description="default CLIP model for the saliency map")
    uptime_s: float
    pid: int = Field(description="the engine's process id: Engine status restarts only the engine it started (engine.pid)")


class Models(BaseModel):
    clip: str = Field(description="default CLIP model for the loss")
    saliency_clip: str = Field(description="default CLIP model for the saliency map")
    loaded: list[str] = Field(description="models this engine has used and keeps in memory")
    weights: list[dict[str, Any]] = Field(description="OpenAI weights files: present or not, where they were looked for")
    missing: list[str] = Field([], description="weights files the default models need and lack (RN101.pt, ...)")
    weights_folder: str = Field("", description="the one folder to put weights files in")
