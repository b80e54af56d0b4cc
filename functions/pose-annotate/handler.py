"""pose-annotate — POST {"id", "image"} → {"id", "image": <base64 JPEG with skeletons drawn>}

The function is an adapter: the server (limits, errors, health, threads) is `cloudpose.service`
and the rendering is `cloudpose.functions.POSE_ANNOTATE`. The image runs `python handler.py`.
"""

from cloudpose.functions import POSE_ANNOTATE
from cloudpose.serve import main

if __name__ == "__main__":
    raise SystemExit(main([POSE_ANNOTATE.name]))
