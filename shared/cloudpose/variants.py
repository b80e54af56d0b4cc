"""Serving variants: backend × precision × input size × letterbox, and the choice for this CPU.

A variant is named `<backend>-<precision>-<imgsz>[-square]`, e.g. `ort-fp32-640`, the same way for
every task; each task's files are `<stem><suffix>` in the model folder. `<PREFIX>_VARIANT=auto`
picks from the CPU's features with the task's own table (`ModelSpec.choices`); a name forces it.
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import ModelSettings
from .letterbox import STRIDE, Shape
from .tasks.base import ModelSpec

BACKENDS = {"ort": "onnxruntime", "ov": "openvino"}  # served everywhere; a task may add reference backends
SUFFIXES = {  # (backend, precision) → file suffix, made by `cloudpose-prepare`
    ("onnxruntime", "fp32"): ".onnx",
    ("onnxruntime", "int8"): ".int8.onnx",
    ("openvino", "fp32"): ".xml",
    ("openvino", "bf16"): ".xml",  # bf16 is a compile-time hint on the same IR
    ("openvino", "int8"): ".int8.xml",
}
FIXED_SHAPE_BACKENDS = ("openvino",)  # compile per input shape, keeping memory per shape: use fixed shapes


@dataclass(frozen=True)
class Variant:
    backend: str  # onnxruntime | openvino | a task's reference backend (ultralytics)
    precision: str  # fp32 | bf16 | int8
    imgsz: int
    square: bool = False  # pad every image to imgsz×imgsz
    stem: str = ""  # the task's model file stem
    suffix: str = ".onnx"

    @property
    def name(self) -> str:
        short = {v: k for k, v in BACKENDS.items()}.get(self.backend, self.backend)
        return f"{short}-{self.precision}-{self.imgsz}" + ("-square" if self.square else "")

    @property
    def file(self) -> str:
        return f"{self.stem}{self.suffix}"

    def path(self, model_dir: Path) -> Path:
        return Path(model_dir) / self.file

    def shapes(self, stretch: bool = False) -> tuple[Shape, ...] | None:
        """The fixed input shapes (width, height), or None where any stride-32 rectangle is served.

        Fixed: 4:3 landscape and portrait (most photos fit them: 3:2 and 16:9 too) and the square;
        only the square for square variants and for tasks that stretch every image to it.
        """
        full = (self.imgsz, self.imgsz)
        if self.square or stretch:
            return (full,)
        if self.backend not in FIXED_SHAPE_BACKENDS:
            return None
        short = -(-round(self.imgsz * 3 / 4) // STRIDE) * STRIDE
        return ((self.imgsz, short), (short, self.imgsz), full)

    def warmup_shapes(self, stretch: bool = False) -> list[Shape]:
        """Inputs run once before ready: every fixed shape, or a 4:3 photo both ways up."""
        fixed = self.shapes(stretch)
        if fixed:
            return list(fixed)
        short = -(-round(self.imgsz * 3 / 4) // STRIDE) * STRIDE
        return [(self.imgsz, short), (short, self.imgsz)]

    def describe(self, stretch: bool = False) -> dict:
        info = {k: v for k, v in asdict(self).items() if k not in ("stem", "suffix")}
        return {**info, "file": self.file, "shapes": self.shapes(stretch)}


def parse(name: str, spec: ModelSpec) -> Variant:
    """`ort-fp32-640[-square]` → the task's Variant; raises ValueError naming what is wrong."""
    backends = {**BACKENDS, **{b: b for b in spec.references}}
    parts = name.strip().lower().split("-")
    if len(parts) not in (3, 4) or parts[0] not in backends or (len(parts) == 4 and parts[3] != "square"):
        raise ValueError(f"variant {name!r}: expected <{'|'.join(backends)}>-<precision>-<imgsz>[-square]")
    backend, precision = backends[parts[0]], parts[1]
    if not parts[2].isdigit() or int(parts[2]) % STRIDE or not 32 <= int(parts[2]) <= 1280:
        raise ValueError(f"variant {name!r}: imgsz must be a multiple of {STRIDE} between 32 and 1280")
    if backend in spec.references:
        if precision != "fp32":
            raise ValueError(f"variant {name!r}: the {backend} reference runs fp32 only")
        suffix = spec.references[backend][1]
    elif (backend, precision) in SUFFIXES:
        suffix = SUFFIXES[(backend, precision)]
    else:
        raise ValueError(f"variant {name!r}: no model file for {backend} {precision}")
    return Variant(backend, precision, int(parts[2]), square=len(parts) == 4, stem=spec.stem, suffix=suffix)


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


CPU_CLASSES = ("amx", "avx512_bf16", "avx512_vnni", "avx2", "arm", "generic")


def cpu_class(features: set[str], machine: str | None = None) -> str:
    """amx | avx512_bf16 | avx512_vnni | avx2 | arm | generic — the classes the variant tables distinguish."""
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


def available(variant: Variant, model_dir: Path) -> str | None:
    """None if `variant` can serve here, else why not (missing file or backend)."""
    if not variant.path(model_dir).exists():
        return f"{variant.path(model_dir)} missing"
    if variant.backend in BACKENDS.values() and importlib.util.find_spec(variant.backend) is None:
        return f"{variant.backend} not installed"
    return None


def choose(spec: ModelSpec, ms: ModelSettings, model_dir: Path, features: set[str] | None = None) -> tuple[Variant, str]:
    """The variant to serve and why (logged at start). <PREFIX>_VARIANT forces; <PREFIX>_BACKEND narrows."""
    if ms.variant != "auto":
        variant, reason = parse(ms.variant, spec), f"forced by {ms.var('variant')}"
    elif ms.backend in spec.references:
        variant = parse(f"{ms.backend}-fp32-{spec.imgsz}", spec)
        reason = f"forced by {ms.var('backend')} (parity and baseline only)"
    elif ms.backend == "onnxruntime":
        variant, reason = parse(spec.fallback, spec), f"forced by {ms.var('backend')}"
    else:
        klass = cpu_class(cpu_features() if features is None else features)
        name, why = spec.choices[klass]
        variant, reason = parse(name, spec), f"CPU class {klass}: {why}"
        if ms.backend == "openvino" and variant.backend != "openvino":
            bf16 = klass in ("amx", "avx512_bf16")
            variant = parse(f"ov-{'bf16' if bf16 else 'fp32'}-{spec.imgsz}", spec)
            reason = f"forced by {ms.var('backend')}"
        missing = available(variant, model_dir)
        if missing and variant.name != spec.fallback:
            variant, reason = parse(spec.fallback, spec), f"{reason}; but {missing}, so the fallback"
    if ms.imgsz and ms.imgsz != variant.imgsz:
        variant = Variant(variant.backend, variant.precision, ms.imgsz, variant.square, variant.stem, variant.suffix)
        reason += f"; input size {ms.imgsz} from {ms.var('imgsz')}"
    return variant, reason
