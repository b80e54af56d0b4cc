"""CloudPose: the pose library both functions share (decode, model, post-processing, drawing, service)."""

__version__ = "0.1.0"
