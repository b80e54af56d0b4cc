"""detect-annotate — POST {"id", "image"} → {"id", "image": "<base64 JPEG with labelled boxes>"}

The function is an adapter: the server (limits, errors, health, threads) is `cloudpose.service`,
the task and renderer are its row in `cloudpose.functions`. The image runs `python handler.py`.
"""

from cloudpose.serve import main

if __name__ == "__main__":
    raise SystemExit(main(["detect-annotate"]))
