"""ONNX Runtime: one dynamic-shape session serves every input shape, shared by all threads."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from .base import Model


class OnnxModel(Model):
    def _load(self) -> None:
        path = self.variant.path(self.settings.model_dir)
        if not path.exists():
            raise FileNotFoundError(f"model file {path} is missing: run `make model` (or cloudpose-prepare)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.settings.threads  # ORT ignores OMP_NUM_THREADS
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads burn a 0.5-CPU quota while they wait; they only pay off on idle cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.check_outputs(path, [o.name for o in self.session.get_outputs()])

    def predict(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: tensor})
