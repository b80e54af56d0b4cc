"""The local default: both functions in one process on port 60000, with the course's paths.

`make up` runs this. Paths: POST /api/pose_estimation and /api/pose_estimation_annotation (the
course's), POST /function/pose-json and /function/pose-annotate (gateway-style), GET / (the
page), /docs (OpenAPI), /_/health and /_/ready.
"""

from __future__ import annotations

import argparse
import os

from .functions import FUNCTIONS
from .serve import configure_logging, limit_malloc_arenas, run

from .deployment import LOCAL_PORT


def curl_example(base_url: str, image: str = "photo.jpg") -> str:
    """A command that works for any image size (the base64 goes through stdin, not the argument list)."""
    return (
        f"(printf '{{\"id\": \"demo-1\", \"image\": \"'; base64 -w0 {image}; printf '\"}}') |\n"
        f"  curl -s -X POST {base_url}/api/pose_estimation -H 'Content-Type: application/json' --data-binary @-"
    )


def _sample() -> str:
    from .service import static_dir

    samples = sorted((static_dir() / "samples").glob("*.jpg"))
    return str(samples[0]) if samples else "photo.jpg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="0.0.0.0 to serve other machines")
    args = parser.parse_args(argv)
    configure_logging()
    limit_malloc_arenas()
    from .config import Settings
    from .service import make_app

    port = int(os.environ.get("PORT", LOCAL_PORT))
    settings = Settings.from_env(port=port)
    app = make_app(list(FUNCTIONS.values()), settings=settings, title="CloudPose (local)")
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"\nCloudPose on http://{shown}:{port}/  (page), http://{shown}:{port}/docs (API)")
    print("Try it once /_/ready says ready:\n" + curl_example(f"http://{shown}:{port}", _sample()) + "\n", flush=True)
    run(app, args.host, port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
