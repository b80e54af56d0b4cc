"""Serving variants: backend × precision × input size × letterbox, and the choice for this CPU.

A variant is named `<backend>-<precision>-<imgsz>[-square]`, e.g. `ort-fp32-640`.
`POSE_VARIANT=auto` picks from the CPU's features; any name forces that variant.
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import Settings
from .preprocess import STRIDE, Shape

BACKENDS = {"ort": "onnxruntime", "ov": "openvino", "ultralytics": "ultralytics"}
WEIGHTS = "yolo11n-pose.pt"
MODEL_FILES = {  # (backend, precision) → file in the model folder, made by `cloudpose-prepare`
    ("onnxruntime", "fp32"): "yolo11n-pose.onnx",
    ("onnxruntime", "int8"): "yolo11n-pose.int8.onnx",
    ("openvino", "fp32"): "yolo11n-pose.xml",
    ("openvino", "bf16"): "yolo11n-pose.xml",  # bf16 is a compile-time hint on the same IR
    ("openvino", "int8"): "yolo11n-pose.int8.xml",
    ("ultralytics", "fp32"): WEIGHTS,
}
FIXED_SHAPE_BACKENDS = ("openvino",)  # compile per input shape, keeping memory per shape: use fixed shapes


@dataclass(frozen=True)
class Variant:
    backend: str  # onnxruntime | openvino | ultralytics
    precision: str  # fp32 | bf16 | int8
    imgsz: int = 640
    square: bool = False  # pad every image to imgsz×imgsz

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

    def shapes(self) -> tuple[Shape, ...] | None:
        """The fixed input shapes (width, height), or None where any stride-32 rectangle is served.

        Fixed: 4:3 landscape and portrait (most photos fit them: 3:2 and 16:9 too) and the square.
        """
        full = (self.imgsz, self.imgsz)
        if self.square:
            return (full,)
        if self.backend not in FIXED_SHAPE_BACKENDS:
            return None
        short = -(-round(self.imgsz * 3 / 4) // STRIDE) * STRIDE
        return ((self.imgsz, short), (short, self.imgsz), full)

    def warmup_shapes(self) -> list[Shape]:
        """Inputs run once before ready: every fixed shape, or a 4:3 photo both ways up."""
        fixed = self.shapes()
        if fixed:
            return list(fixed)
        short = -(-round(self.imgsz * 3 / 4) // STRIDE) * STRIDE
        return [(self.imgsz, short), (short, self.imgsz)]

    def describe(self) -> dict:
        return {**asdict(self), "file": self.file, "shapes": self.shapes()}


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


def cpu_features(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (x86 `flags`, ARM `Features`) from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_class(features: set[str], machine: str | None = None) -> str:
    """amx | avx512_bf16 | avx512_vnni | avx2 | arm | generic — the classes the variant table distinguishes."""
    machine = machine or platform.machine()
    if machine in ("aarch64", "arm64"):
        return "arm"
    if "amx_bf16" in features:
        return "amx"
    if "avx512_bf16" in features:
        return "avx512_bf16"
    if "avx512_vnni" in features or "avx_vnni" in features:
        return "avx512_vnni"
    if "avx2" in features and "fma" in features:
        return "avx2"
    return "generic"


# The variant each CPU class gets: the fastest variant whose AP on coco-pose-dev is within 1 point of
# Ultralytics' at the same threshold (docs/benchmarks.md). int8 uses 7-bit weights, so its integer
# results are bit-identical on AVX2, VNNI and AMX (checked under qemu's Haswell model): its AP is the
# same everywhere; speeds for classes other than this session's CPU come from the figures.
FALLBACK = "ort-fp32-640"
CHOICE = {
    "amx": ("ov-bf16-512-square", "bf16 on AMX, one 512² input: the most requests per 0.5-CPU pod within 256 MiB, at torch's AP (docs/benchmarks.md)"),
    "avx512_bf16": ("ov-bf16-512-square", "native bf16 (AVX-512 BF16), one 512² input: bounded memory, fast start"),
    "avx512_vnni": ("ort-int8-512", "VNNI without bf16: int8 (u8×s7, exact on every x86 ISA), keypoint branch fp32"),
    "avx2": ("ort-int8-512", "AVX2 only: int8 with 7-bit weights (no u8×s8 saturation) at 512: ~3× torch"),
    "arm": (FALLBACK, "ARM: ONNX Runtime fp32 (its kernels are tuned for NEON)"),
    "generic": (FALLBACK, "no AVX2: ONNX Runtime fp32 runs anywhere"),
}


def available(variant: Variant, model_dir: Path) -> str | None:
    """None if `variant` can serve here, else why not (missing file or backend)."""
    if not variant.path(model_dir).exists():
        return f"{variant.path(model_dir)} missing"
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino", "ultralytics": "ultralytics"}[variant.backend]
    if importlib.util.find_spec(module) is None:
        return f"{module} not installed"
    return None


def choose(settings: Settings, features: set[str] | None = None) -> tuple[Variant, str]:
    """The variant to serve and why (logged at start). POSE_VARIANT forces; POSE_BACKEND narrows."""
    if settings.variant != "auto":
        variant, reason = parse(settings.variant), "forced by POSE_VARIANT"
    elif settings.backend == "ultralytics":
        variant, reason = Variant("ultralytics", "fp32"), "forced by POSE_BACKEND (parity and baseline only)"
    elif settings.backend == "onnxruntime":
        variant, reason = parse(FALLBACK), "forced by POSE_BACKEND"
    else:
        klass = cpu_class(cpu_features() if features is None else features)
        name, why = CHOICE[klass]
        variant, reason = parse(name), f"CPU class {klass}: {why}"
        if settings.backend == "openvino" and variant.backend != "openvino":
            variant, reason = Variant("openvino", "bf16" if klass in ("amx", "avx512_bf16") else "fp32"), "forced by POSE_BACKEND"
        missing = available(variant, settings.model_dir)
        if missing and variant.name != FALLBACK:
            variant, reason = parse(FALLBACK), f"{reason}; but {missing}, so the fallback"
    if settings.imgsz and settings.imgsz != variant.imgsz:
        variant = Variant(variant.backend, variant.precision, settings.imgsz, variant.square)
        reason += f"; input size {settings.imgsz} from POSE_IMGSZ"
    return variant, reason
