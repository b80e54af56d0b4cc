"""ONNX Runtime: one dynamic-shape session serves every input shape, shared by all threads.

The session is built in two steps: a short-lived child process has ONNX Runtime optimise the graph
for this CPU (its NCHWc layout depends on the vector width, so the result cannot be made at build
time and shipped) and write it to a temporary file; the serving session then loads that file with
nothing left to optimise. Optimising holds the original weights next to their re-laid-out copies:
done in the child, that peak never lands in the server's memory (yolov3-tiny: +117 MiB one-step,
+70 MiB this way, for the same speed).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .base import Model


def _options(threads: int, level: ort.GraphOptimizationLevel) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # ORT ignores OMP_NUM_THREADS
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = level
    # Spinning worker threads burn a 0.5-CPU quota while they wait; they only pay off on idle cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def optimise(source: str, target: str, threads: int) -> None:
    """Optimise `source` for this CPU into `target` (run in the child process)."""
    opts = _options(threads, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    opts.optimized_model_filepath = target
    ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def optimised_session(path: Path, threads: int, timeout: float = 300) -> ort.InferenceSession:
    """A session of `path` optimised for this CPU, holding only the optimised graph's weights."""
    with tempfile.TemporaryDirectory(prefix="cloudpose-ort-") as work:
        target = str(Path(work) / "optimised.onnx")
        code = "import sys; from cloudpose.backends.onnxruntime_backend import optimise; optimise(*sys.argv[1:3], int(sys.argv[3]))"
        child = subprocess.run([sys.executable, "-c", code, str(path), target, str(threads)], capture_output=True,
                               text=True, timeout=timeout)  # fmt: skip
        if child.returncode or not Path(target).exists():
            raise RuntimeError(f"optimising {path.name} failed: {child.stderr.strip()[-1000:]}")
        plain = _options(threads, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        return ort.InferenceSession(target, plain, providers=["CPUExecutionProvider"])


class OnnxModel(Model):
    def _load(self) -> None:
        path = self.variant.path(self.settings.model_dir)
        if not path.exists():
            raise FileNotFoundError(f"model file {path} is missing: run `make model` (or cloudpose-prepare)")
        self.session = optimised_session(path, self.settings.threads)
        self.input_name = self.session.get_inputs()[0].name
        self.check_outputs(path, [o.name for o in self.session.get_outputs()])

    def predict(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: tensor})
