"""The baseline `make bench` beats: a typical FastAPI + Ultralytics server, as a course project writes it.

torch, `YOLO(...).predict(imgsz=640)`, one thread, a pydantic body, the same JSON answer.
Deliberately nothing clever: it is the yardstick, measured in the same run as our variants.

    PORT=8000 POSE_MODEL_DIR=~/.cache/cloudpose/models python -m bench.baseline_server
"""


import base64  # no `from __future__ import annotations`: FastAPI must see the local body model
import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")


def create_app():
    import cv2
    import numpy as np
    import torch
    from fastapi import FastAPI
    from pydantic import BaseModel
    from ultralytics import YOLO

    model_dir = Path(os.environ.get("POSE_MODEL_DIR", Path.home() / ".cache/cloudpose/models")).expanduser()
    os.environ.setdefault("YOLO_CONFIG_DIR", str(model_dir / "ultralytics-config"))
    torch.set_num_threads(int(os.environ.get("POSE_THREADS", "1")))
    model = YOLO(str(model_dir / "yolo11n-pose.pt"), task="pose")
    model.predict(np.zeros((480, 640, 3), np.uint8), imgsz=640, verbose=False)  # warm up
    app = FastAPI()

    class Request(BaseModel):
        id: str
        image: str

    @app.get("/_/ready")
    def ready() -> dict:
        return {"status": "ready", "model": {"variant": "ultralytics-torch-640"}}

    @app.post("/api/pose_estimation")
    def pose(req: Request) -> dict:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(req.image), np.uint8), cv2.IMREAD_COLOR)
        r = model.predict(img, imgsz=640, conf=float(os.environ.get("POSE_CONF", "0.25")), verbose=False)[0]
        xywh = r.boxes.xyxy.numpy()
        return {
            "id": req.id,
            "count": len(r.boxes),
            "boxes": [
                {"x": float(b[0]), "y": float(b[1]), "width": float(b[2] - b[0]), "height": float(b[3] - b[1]),
                 "probability": float(p)}
                for b, p in zip(xywh, r.boxes.conf.numpy())
            ],  # fmt: skip
            "keypoints": r.keypoints.data.numpy().tolist(),
            "speed_preprocess": r.speed["preprocess"],
            "speed_inference": r.speed["inference"],
            "speed_postprocess": r.speed["postprocess"],
        }

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning")
