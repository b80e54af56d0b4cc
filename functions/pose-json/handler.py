"""pose-json — POST {"id", "image"} → {"id", "count", "boxes", "keypoints", "speed_*"}

The function is an adapter: the server (limits, errors, health, threads) is `cloudpose.service`
and the rendering is `cloudpose.functions.POSE_JSON`. The image runs `python handler.py`.
"""

from cloudpose.functions import POSE_JSON
from cloudpose.serve import main

if __name__ == "__main__":
    raise SystemExit(main([POSE_JSON.name]))
