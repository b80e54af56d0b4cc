"""Backends behind the one PoseModel interface: ONNX Runtime and OpenVINO serve; Ultralytics checks parity."""
