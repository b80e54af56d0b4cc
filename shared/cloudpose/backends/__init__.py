"""Run a task: its exported model on ONNX Runtime or OpenVINO, or its Python function when it has no model.

`load(task, settings)` is the one factory: it picks the variant for this CPU (`variants.choose`),
builds the backend and loads it. Task-specific reference backends (Ultralytics, for parity and the
baseline) are named by the task and imported only when asked for.
"""

from __future__ import annotations

import importlib
import logging

from ..config import ModelSettings, Settings
from ..tasks.base import Task
from ..variants import choose
from .base import Model

log = logging.getLogger("cloudpose.backends")


def load(task: Task, settings: Settings, model_settings: ModelSettings | None = None, *, features=None):
    """The loaded runner of `task`: a `Model`, or a `FunctionRunner` for a task without a model."""
    ms = model_settings or task.settings(settings.env)
    if task.model is None:
        from .python_backend import FunctionRunner

        return FunctionRunner(task, settings, ms).load()
    variant, reason = choose(task.model, ms, settings.model_dir, features)
    log.info("%s variant %s: %s", task.name, variant.name, reason)
    if variant.backend == "onnxruntime":
        from .onnxruntime_backend import OnnxModel as cls
    elif variant.backend == "openvino":
        from .openvino_backend import OpenVinoModel as cls
    elif variant.backend in task.model.references:
        module, _, name = task.model.references[variant.backend][0].partition(":")
        cls = getattr(importlib.import_module(module), name)
    else:
        raise ValueError(f"unknown backend {variant.backend!r}")
    model: Model = cls(task, variant, settings, ms)
    model.reason = reason
    return model.load()
