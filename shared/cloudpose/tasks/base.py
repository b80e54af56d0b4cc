"""What a task is: the pieces it brings to the shared service. Adding a task means one folder under
`tasks/` that fills these in, and rows in `functions.py`; the service, codec, backends stay untouched.

A model task brings its model files (and how to build them), input size and placement, the decoding
of raw outputs into its result type, and the variant each CPU class gets. A task without a model
(photo metadata, thumbnails) brings one Python function from the decoded image to its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ..config import ModelSettings
from ..imaging import Decoded
from ..letterbox import Letterbox


class Result(Protocol):
    """What the service needs of any task's result: how many things it found, and its stage timings."""

    speed: dict[str, float]

    @property
    def count(self) -> int: ...


Decoder = Callable[[list[np.ndarray], Letterbox, Decoded, ModelSettings, Any], Result]


@dataclass(frozen=True)
class ModelSpec:
    """A task's model, for the generic backends (ONNX Runtime, OpenVINO) and the build-time preparation."""

    stem: str  # files in the model folder: <stem>.onnx, <stem>.int8.onnx, <stem>.xml, <stem>.int8.xml
    outputs: tuple[str, ...]  # the graph's output names, in the order `decode` takes them
    imgsz: int  # default input long side
    decode: Decoder  # raw outputs → result, in original-image pixels
    choices: dict[str, tuple[str, str]]  # CPU class → (variant name, why): what POSE_VARIANT=auto serves
    fallback: str  # runs everywhere; also served when the chosen variant's files are missing
    prepare: str  # "module:function(model_dir, *, source, variants) -> list[Path]", imported only at build time
    float_scope: str  # regex of graph node names that int8 quantisation keeps in float
    stretch: bool = False  # resize to imgsz×imgsz without keeping the aspect (as the model was trained)
    f32_scope: str = ""  # regex of node names that stay float32 when the body runs in bf16 (the outputs' last ops)
    defaults: dict = field(default_factory=dict)  # ModelSettings defaults: conf, iou, max_det
    context: Callable[[Path], Any] | None = None  # loaded once beside the model (class names, anchors)
    references: dict[str, tuple[str, str]] = field(default_factory=dict)  # backend → ("module:Class", file suffix)


@dataclass(frozen=True)
class Task:
    """One vision task. `prefix` names its environment variables (POSE_VARIANT, DETECT_CONF, ...)."""

    name: str
    prefix: str
    model: ModelSpec | None = None
    run: Callable[[Decoded, ModelSettings], Result] | None = None  # a task without a model
    min_side: int = 0  # decode JPEGs reduced as long as this many pixels remain (model tasks: the input size)
    pixels: bool = True  # False: the task reads the file itself; the service only checks its header and limits
    defaults: dict = field(default_factory=dict)  # ModelSettings defaults of a task without a model

    def settings(self, env: dict[str, str] | None = None) -> ModelSettings:
        """This task's knobs from `env` (default: the process environment)."""
        defaults = self.model.defaults if self.model else self.defaults
        return ModelSettings.from_env(self.prefix, env, **defaults)
