"""Typed models of every JSON object the API (and the CLI's --json) returns, for /openapi.json.

The routes build their dicts from facelm.api's `to_dict()` and return them as they are (no
re-validation per request); these models document that JSON, and tests/test_contracts_schema.py
validates real server and CLI output against them. Objects facelm defines forbid unknown fields
there, so a field added to an output without being documented here fails that test. The evidence
behind an explanation is open (additional fields allowed): it lists what the texts state.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

Point = tuple[float, float]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stamped(Closed):
    schema_version: int = Field(description="layout version of facelm's outputs (facelm.schema_version)")
    facelm_version: str = Field(description="the facelm release that wrote this object")


class Detection(Closed):
    box: tuple[float, float, float, float] = Field(description="x, y, width, height in pixels")
    score: float = Field(description="detector confidence, 0..1")
    landmarks5: list[Point] = Field(description="right eye, left eye, nose tip, mouth corners")


class Pose(Closed):
    yaw: float = Field(description="degrees; > 0: the face turns towards the image's right")
    pitch: float = Field(description="degrees; > 0: the face looks up")
    roll: float = Field(description="degrees; > 0: the head tilts clockwise in the image")
    image_rotation: int = Field(0, description="90, 180 or 270 when the face lies turned in the image")


class Quality(Closed):
    brightness: float = Field(description="mean luma of the face region, 0..1")
    contrast: float = Field(description="RMS contrast of the face region, 0..1")
    sharpness: float = Field(description="variance of the Laplacian on the face at 112 px")
    face_size_px: float = Field(description="the face box's shorter side in pixels")
    interocular_px: float = Field(description="distance between the eye centres in pixels")
    overexposed: float = Field(description="share of face pixels with luma >= 250")
    underexposed: float = Field(description="share of face pixels with luma <= 5")


class Geometry(Closed):
    """Landmark ratios divided by the inter-ocular distance."""
    face_width: float
    face_height: float
    eye_width: float
    nose_length: float
    nose_width: float
    mouth_width: float
    jaw_width: float
    brow_to_eye: float


class Attributes(Closed):
    age: float = Field(description="expected age in years")
    age_range: tuple[float, float] = Field(description="10th-90th percentile of the age estimate")
    gender: Literal["female", "male"]
    gender_confidence: float
    expression: str = Field(description="most probable of the 7 FER2013 classes")
    expression_probs: dict[str, float]
    race: Optional[str] = Field(None, description="UTKFace group, for audits only")
    race_confidence: Optional[float] = None
    race_probs: Optional[dict[str, float]] = None


class Analysis(Closed):
    """One analysed face (`facelm analyze`; `a`, `b` and `analysis` inside other results)."""
    source: str = Field(description="the image's path or upload name")
    image_size: tuple[int, int] = Field(description="width, height after EXIF rotation")
    faces_found: int
    detection: Detection
    landmarks68: list[Point]
    pose: Pose
    quality: Quality
    geometry: Geometry
    attributes: Optional[Attributes] = Field(description="null in identity-only (fast) mode")
    embeddings: Optional[dict[str, list[float]]] = Field(
        None, description="identity embeddings, only when asked for (--embeddings)")
    models: dict[str, str] = Field(description="which model produced each value")
    face_index: Optional[int] = Field(None, description="the face's number in the photo, from 0 "
                                      "left to right by box centre (--face N)")
    warnings: list[str] = Field([], description="one line when several faces were found and this "
                                "one was chosen (--face)")


class AnalyzeResult(Analysis, Stamped):
    """`facelm analyze IMG`."""


class AnalyzeFacesResult(Stamped):
    """`facelm analyze IMG --face all`: every face, numbered from 0 left to right."""
    source: str
    image_size: tuple[int, int]
    faces_found: int
    warnings: list[str] = Field(description="empty: no face was chosen among others")
    faces: list[Analysis]


class Differences(Closed):
    age_gap: Optional[float] = Field(description="years; null in fast mode")
    gender_match: Optional[bool]
    expression_a: Optional[str]
    expression_b: Optional[str]
    expression_distance: Optional[float] = Field(description="total variation distance, 0..1")
    yaw_gap: float
    pitch_gap: float
    roll_gap: float
    max_abs_yaw: float
    brightness_gap: float
    sharpness_ratio: float = Field(description="sharper / blurrier, >= 1")
    min_interocular_px: float
    geometry_distance: float = Field(description="mean relative difference of the landmark ratios")
    geometry_largest: tuple[str, float] = Field(description="the ratio that differs most, and by how much")


class Evidence(BaseModel):
    """The rounded values the two texts state (open: the list grows with the texts)."""
    model_config = ConfigDict(extra="allow")
    same: bool
    strength: str = Field(description="strong, moderate or weak")
    score: float
    threshold: float
    a: dict[str, Any] = Field(description="what the texts state about photo A")
    b: dict[str, Any] = Field(description="what the texts state about photo B")


class Explanation(Closed):
    concise: str = Field(description="about 50 words")
    detailed: str = Field(description="about 120 words")
    evidence: Evidence


class PairFace(Closed):
    face_index: int = Field(description="number in its photo, from 0 left to right")
    box: tuple[float, float, float, float]
    faces_found: int


class FacePair(Closed):
    """Which faces `verify --face all` compared in full: the pair with the highest fused score."""
    a: PairFace
    b: PairFace
    pairs_compared: int
    scores: list[list[float]] = Field(description="fused score of face i of A (row) and j of B")


class VerifyResult(Stamped):
    """`POST /v1/verify` and `facelm verify A B --json`."""
    same: bool = Field(description="the verdict at the threshold")
    score: float = Field(description="fused cosine similarity of the identity models")
    threshold: float
    probability: float = Field(description="calibrated P(same person | score)")
    confidence: float = Field(description="probability of the stated verdict")
    scores: dict[str, float] = Field(description="cosine similarity per identity model")
    model_verdicts: dict[str, bool]
    differences: Differences
    explanation: Optional[Explanation | dict[str, str]] = Field(
        description="the texts; a text model's answers by tier when the server has --model")
    a: Analysis
    b: Analysis
    warnings: list[str] = Field([], description="A's and B's: several faces found, one chosen (face)")
    face_pair: Optional[FacePair] = Field(None, description="face=all: the best-matching pair")
    text_model: Optional[str] = Field(None, description="the model that wrote the texts (server --model)")
    model: Optional[str] = Field(None, description="`facelm verify --model`: the model that wrote the texts")
    verdict_agreement: Optional[dict[str, bool]] = Field(
        None, description="`facelm verify --model`: whether each text states the calibrated verdict")


class SearchMatch(Closed):
    id: int = Field(description="the gallery entry's id (facelm index remove --ids)")
    path: str = Field(description="the gallery photo")
    identity: str = Field(description="its identity: the CSV's `identity`, else the file stem")
    score: float = Field(description="fused score, as /v1/verify computes it for the two photos")
    same: bool = Field(description="the verdict: score >= threshold")
    verdict: Literal["same", "different"] = Field(description="the verdict in words")
    probability: float = Field(description="calibrated P(same person | score)")


class SearchBest(Closed):
    """The query compared with the best match's photo: /v1/verify's fields, less `a`."""
    path: str
    identity: str
    same: bool
    score: float
    threshold: float
    probability: float
    confidence: float
    scores: dict[str, float]
    model_verdicts: dict[str, bool]
    differences: Differences
    explanation: Optional[Explanation]
    b: Analysis = Field(description="the gallery photo's analysis")


class SearchGallery(BaseModel):
    """The gallery searched: folder, size and the FAISS index kind (open: IVF adds nlist, nprobe,
    pq k_factor, both the measured recall@10)."""
    folder: str
    size: int
    kind: Literal["exact", "ivf", "pq"]
    faiss: str


class SearchResult(Stamped):
    """`POST /v1/search` and `facelm search IMG --index GALLERY --json`."""
    matches: list[SearchMatch] = Field(description="the top k, best first")
    threshold: float
    min_score: Optional[float] = Field(None, description="matches below it were left out (min_score)")
    best_match: Optional[SearchBest] = Field(description="the query against the best match, explained")
    query: Analysis
    gallery: SearchGallery
    warnings: list[str] = Field([], description="the query's: several faces found, one chosen")


class DescribeResult(Stamped):
    """`POST /v1/describe` and `facelm describe IMG --json`."""
    answers: dict[str, str] = Field(description="aspect -> answer")
    analysis: Analysis
    warnings: list[str] = Field([], description="several faces found, one chosen (face)")
    text_model: Optional[str] = Field(None, description="the model that wrote the answers (--model)")


class FaceDescription(Closed):
    answers: dict[str, str]
    analysis: Analysis
    warnings: list[str]


class DescribeFacesResult(Stamped):
    """`describe --face all` (and `face=all` on `POST /v1/describe`): every face described."""
    source: str
    image_size: tuple[int, int]
    faces_found: int
    warnings: list[str]
    faces: list[FaceDescription]


class Aspect(Closed):
    name: str
    title: str


class AspectList(Stamped):
    aspects: list[Aspect]


class Health(Stamped):
    """`GET /healthz`: 200 when ready, 503 while the workers start."""
    status: Literal["ok", "starting"]
    version: str
    auth_required: bool
    max_upload_bytes: int
    max_pixels: int
    text_model: Optional[str]
    chat_model: Optional[str]
    ready: bool
    workers: int
    queue_limit: int
    in_progress: int
    completed: int
    rejected_busy: int
    worker_restarts: int
    receiving: int = Field(description="request bodies being received now")
    receive_limit: int
    receive_timeout_s: float
    timed_out: int
    rejected_receiving: int


class Model(Closed):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Closed):
    object: Literal["list"]
    data: list[Model]


# ---- OpenAI's objects: their layout is OpenAI's (versioned by its API), so they carry no facelm
# stamp; `system_fingerprint` names the facelm release, as OpenAI's names its backend.

class Message(Closed):
    role: Literal["assistant"]
    content: str


class Choice(Closed):
    index: int
    message: Message
    finish_reason: Literal["stop", "length"]


class Usage(Closed):
    prompt_tokens: int = Field(description="whitespace words of the prompt (no tokenizer is exposed)")
    completion_tokens: int = Field(description="whitespace words of the answer")
    total_tokens: int


class ChatCompletion(Closed):
    """`POST /v1/chat/completions` without `stream`."""
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[Choice]
    usage: Usage


class Delta(Closed):
    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None


class ChunkChoice(Closed):
    index: int
    delta: Delta
    finish_reason: Optional[Literal["stop", "length"]]


class ChatCompletionChunk(Closed):
    """One `data:` event of a streamed completion (`"stream": true`)."""
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChunkChoice] = Field(description="empty in the usage chunk")
    usage: Optional[Usage] = Field(None, description="only in the last chunk, with "
                                   "stream_options.include_usage")
