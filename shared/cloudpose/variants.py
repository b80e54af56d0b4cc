"""Serving variants: backend × precision × input size × letterbox, and the choice for this CPU.

A variant is named `<backend>-<precision>-<imgsz>[-square]`, e.g. `ort-fp32-640`.
`POSE_VARIANT=auto` picks from the CPU's features; any name forces that variant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .config import Settings
from .preprocess import STRIDE

BACKENDS = {"ort": "onnxruntime", "ov": "openvino", "ultralytics": "ultralytics"}
WEIGHTS = "yolo11n-pose.pt"
MODEL_FILES = {  # (backend, precision) → file in the model folder, made by `cloudpose-prepare`
    ("onnxruntime", "fp32"): "yolo11n-pose.onnx",
    ("ultralytics", "fp32"): WEIGHTS,
}


@dataclass(frozen=True)
class Variant:
    backend: str  # onnxruntime | openvino | ultralytics
    precision: str  # fp32 | bf16 | int8
    imgsz: int = 640
    square: bool = False  # pad every image to imgsz×imgsz instead of the minimal rectangle
    bucket: int = STRIDE  # grid the padded short side is rounded up to

    @property
    def name(self) -> str:
        short = {v: k for k, v in BACKENDS.items()}[self.backend]
        return f"{short}-{self.precision}-{self.imgsz}" + ("-square" if self.square else "")

    @property
    def file(self) -> str:
        try:
            return MODEL_FILES[(self.backend, self.precision)]
        except KeyError:
            raise ValueError(f"no model file for {self.backend} {self.precision}") from None

    def path(self, model_dir: Path) -> Path:
        return Path(model_dir) / self.file

    def warmup_shapes(self) -> list[tuple[int, int]]:
        """(width, height) inputs to run before ready: the landscape and portrait shapes of a 4:3 photo."""
        if self.square:
            return [(self.imgsz, self.imgsz)]
        short = min(self.imgsz, -(-round(self.imgsz * 3 / 4) // self.bucket) * self.bucket)
        return [(self.imgsz, short), (short, self.imgsz)]

    def describe(self) -> dict:
        return {**asdict(self), "file": self.file}


def parse(name: str) -> Variant:
    """`ort-fp32-640[-square]` → Variant; raises ValueError naming what is wrong."""
    parts = name.strip().lower().split("-")
    if len(parts) not in (3, 4) or parts[0] not in BACKENDS or (len(parts) == 4 and parts[3] != "square"):
        raise ValueError(f"variant {name!r}: expected <{'|'.join(BACKENDS)}>-<precision>-<imgsz>[-square]")
    backend, precision = BACKENDS[parts[0]], parts[1]
    if not parts[2].isdigit() or int(parts[2]) % STRIDE or not 32 <= int(parts[2]) <= 1280:
        raise ValueError(f"variant {name!r}: imgsz must be a multiple of {STRIDE} between 32 and 1280")
    variant = Variant(backend, precision, int(parts[2]), square=len(parts) == 4)
    variant.file  # noqa: B018 — raises if this backend/precision pair does not exist
    return variant


def choose(settings: Settings) -> tuple[Variant, str]:
    """The variant to serve and why (logged at start)."""
    if settings.variant != "auto":
        variant, reason = parse(settings.variant), "forced by POSE_VARIANT"
    elif settings.backend == "ultralytics":
        variant, reason = Variant("ultralytics", "fp32"), "forced by POSE_BACKEND (parity and baseline only)"
    else:
        variant, reason = Variant("onnxruntime", "fp32"), "ONNX Runtime fp32 runs on every CPU"
    if settings.imgsz and settings.imgsz != variant.imgsz:
        variant = Variant(variant.backend, variant.precision, settings.imgsz, variant.square, variant.bucket)
        reason += f"; input size {settings.imgsz} from POSE_IMGSZ"
    return variant, reason
