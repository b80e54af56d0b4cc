"""OpenVINO: the fast path on Intel CPUs with native bf16 (AVX-512 BF16 / AMX), where it halves the model's time.

OpenVINO compiles one executable per input shape and keeps the memory of every shape it has seen:
a dynamic-shape model grew past 500 MiB over load-128's 15 shapes. So the model is compiled for a
fixed set of shapes (Variant.shapes: 4:3 landscape, 4:3 portrait, square) and every image is
letterboxed into the smallest that holds it: memory is bounded. The square, which holds every
image, is compiled before ready (cold start pays one compile); the smaller shapes compile right
after, one at a time, and are used as soon as each is warm.
Each concurrent call takes its own infer request from a per-shape pool.
The compiled graph takes the letterbox as it is (uint8, HWC, BGR) and converts it itself: the
conversion folds into the first convolution instead of costing a float32 copy of the image in
numpy (about 3 ms of a 20 ms request at 512², measured).
"""

from __future__ import annotations

import logging
import queue
import re
import threading

import numpy as np
import openvino as ov
from openvino.preprocess import ColorFormat, PrePostProcessor

from .base import Model

log = logging.getLogger("cloudpose.openvino")


class OpenVinoModel(Model):
    def _load(self) -> None:
        path = self.variant.path(self.settings.model_dir)
        if not path.exists():
            raise FileNotFoundError(f"model file {path} is missing: run `make model` (or cloudpose-prepare)")
        wanted = self.variant.shapes(self.spec.stretch)
        if not wanted:
            raise ValueError(f"{self.variant.name}: OpenVINO serves fixed input shapes only")
        self.core = ov.Core()
        self.model = self.core.read_model(str(path))
        self.check_outputs(path, [o.get_any_name() for o in self.model.outputs])
        native = runs_native_bf16(self.variant.precision, self.core)
        self.runs_as = "bf16" if native else "f32"  # a bf16 variant on a CPU without bf16 runs f32: say so
        if native and self.spec.f32_scope:
            keep_float32(self.model, self.spec.f32_scope)
        self.config = compile_config(self.settings.threads, native)
        self.compiled: dict[tuple[int, int], ov.CompiledModel] = {}
        self.pools: dict[tuple[int, int], queue.SimpleQueue] = {}
        largest = max(wanted, key=lambda s: s[0] * s[1])
        self._compile(largest)
        self.shapes = (largest,)
        self._pending = [s for s in wanted if s != largest]
        self._steady = threading.Event()

    def warmup(self) -> None:
        super().warmup()
        # Not a daemon: exiting mid-compile would abort inside OpenVINO; exit waits for it instead.
        threading.Thread(target=self._compile_rest, name="ov-shapes").start()

    def wait_steady(self, timeout: float = 60) -> bool:
        return self._steady.wait(timeout)

    @property
    def steady(self) -> bool:
        return self._steady.is_set()

    def _compile(self, shape: tuple[int, int]) -> None:
        w, h = shape
        fixed = self.model.clone()
        fixed.reshape([1, 3, h, w])
        compiled = self.core.compile_model(with_uint8_input(fixed), "CPU", self.config)
        compiled.create_infer_request().infer({0: self.blank(w, h)})
        self.pools[shape] = queue.SimpleQueue()
        self.compiled[shape] = compiled

    def _compile_rest(self) -> None:
        for shape in self._pending:
            try:
                self._compile(shape)
                self.shapes = (*self.shapes, shape)  # one atomic swap: preprocess sees old or new, both valid
            except Exception:  # the square still serves these images
                log.exception("compiling %dx%d failed", *shape)
        self.model = None  # the compiled models hold their own weights
        self._steady.set()
        log.info("OpenVINO shapes ready: %s", ", ".join(f"{w}x{h}" for w, h in self.shapes))

    def to_input(self, letterboxed: np.ndarray) -> np.ndarray:
        return letterboxed[None]  # 1xHxWx3 uint8 BGR: a view, no copy

    def describe(self) -> dict:
        return {**super().describe(), "runs_as": self.runs_as, "f32_scope_runs_as": self.scope_precision()}

    def scope_precision(self) -> list[str]:
        """The precisions OpenVINO actually chose for the task's float32 scope (["f32"] when it kept it)."""
        if not self.spec.f32_scope or not self.compiled:
            return []
        compiled = self.compiled[max(self.compiled, key=lambda s: s[0] * s[1])]
        found = set()
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            names = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else ""
            if re.search(self.spec.f32_scope, names) and "runtimePrecision" in info:
                found.add(info["runtimePrecision"].astype(str))
        return sorted(found)

    def predict(self, tensor: np.ndarray) -> list[np.ndarray]:
        shape = (tensor.shape[2], tensor.shape[1])
        pool = self.pools[shape]
        try:
            request = pool.get_nowait()
        except queue.Empty:
            request = self.compiled[shape].create_infer_request()
        try:
            request.infer({0: tensor})
            return [request.get_output_tensor(i).data.copy() for i in range(len(request.model_outputs))]
        finally:
            pool.put(request)


def with_uint8_input(model: ov.Model) -> ov.Model:
    """The model with its input as 1xHxWx3 uint8 BGR and the float RGB 0–1 conversion done in the graph."""
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
    return ppp.build()


def keep_float32(model: ov.Model, scope: str) -> int:
    """Mark the nodes matching `scope` to run in float32 whatever the inference precision (OpenVINO's per-node precision)."""
    marked = 0
    for op in model.get_ops():
        if re.search(scope, op.get_friendly_name()):
            op.get_rt_info()["disable_fp16_compression_0"] = ""  # honoured by the CPU plugin for bf16 too
            marked += 1
    return marked


def compile_config(threads: int, bf16: bool) -> dict:
    """How every serving model is compiled: `threads` for one stream, latency first, bf16 or f32 arithmetic."""
    return {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        "ENABLE_CPU_PINNING": False,  # a pod's CPU quota is not a core of its own
    }


def runs_native_bf16(precision: str, core: ov.Core) -> bool:
    """bf16 and int8 variants run their float parts in bf16 where the CPU has it natively, else in f32."""
    return precision in ("bf16", "int8") and has_bf16(core)


def has_bf16(core: ov.Core) -> bool:
    """bf16 only pays where the CPU has it natively; elsewhere OpenVINO would emulate it or fall back."""
    try:
        return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        return False
