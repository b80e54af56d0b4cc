"""docs/benchmarks.md from what `bench.serving` measured: one section per task, each naming its CPU and date.

A run of one task (`--task detect`) keeps the other task's section from the last run that measured it
(`benchmarks.json` holds every section's rows and where and when they were measured), so a table is
never shown beside a CPU or date it was not measured on. The hand-written figures measured on other
machines (docs/benchmarks-elsewhere.md) are included as they are, never written.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from cloudpose.deployment import CPU_CORES, MEMORY_BYTES

from .accuracy import runs_note
from .suites import SUITES, Suite

ELSEWHERE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-elsewhere.md"
NAN = float("nan")


@dataclass
class Row:
    """One server's figures in one run."""

    variant: str
    model_ms: float = NAN
    pipeline_ms: float = NAN  # in-process: decode → result
    e2e_c1_ms: float = NAN  # HTTP, one client, unconstrained process
    rps_c4: float = NAN  # in the pod-sized cgroup
    latency: dict[int, tuple[float, float]] = field(default_factory=dict)  # concurrency → (p50, p95)
    ap: float = NAN  # at the serving threshold
    ap_low: float = NAN  # at the AP-style threshold
    peak_rss_mib: float = NAN
    cgroup_peak_mib: float = NAN
    cold_start_s: float = NAN  # in the pod
    cold_start_full_s: float = NAN  # full CPU: the figure the cold-start target is about
    errors: int = 0
    oom_kills: int = 0
    paired_rps: list[tuple[float, float]] = field(default_factory=list)  # (yardstick, this) req/s per round
    runs_as: str = ""  # OpenVINO's actual precision where it differs from the name (bf16 without bf16 hardware)
    gflop: float = NAN  # the model's arithmetic per image at the shapes served (median over the photos)
    gops: float = NAN  # reached: GFLOP / model time, per image (median)
    peak_gops: float = NAN  # one core's nominal peak for the precision it ran in (bench.flops)
    precision: str = ""  # that precision

    @property
    def paired(self) -> list[float]:
        return [ours / base for base, ours in self.paired_rps]

    @property
    def paired_ratio(self) -> float:
        return statistics.median(self.paired) if self.paired else NAN

    @classmethod
    def from_dict(cls, d: dict) -> "Row":
        known = {f.name for f in fields(cls)}
        row = cls(**{k: v for k, v in d.items() if k in known})
        row.latency = {int(c): tuple(v) for c, v in row.latency.items()}
        row.paired_rps = [tuple(p) for p in row.paired_rps]
        return row


@dataclass
class Section:
    """One task's rows and the run they came from (`meta`: date, CPU, class, flags, command, load)."""

    task: str
    meta: dict = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"meta": self.meta, "rows": [asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, task: str, d: dict) -> "Section":
        return cls(task, d.get("meta", {}), [Row.from_dict(r) for r in d.get("rows", [])])


def _f(value: float, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _conf(c: float) -> str:
    return f"{c:g}".removeprefix("0")  # 0.25 → .25, as the table headings have always said


def caption(meta: dict) -> str:
    """Where and when: CPU model, vCPUs, CPU class, its AVX/AMX flags, the date, the command."""
    return (f"Measured {meta.get('date', '?')} on **{meta.get('cpu', '?')}** ({meta.get('vcpus', '?')} vCPUs; "
            f"CPU class `{meta.get('cpu_class', '?')}`; {meta.get('flags') or 'no AVX'}), "
            f"by `{meta.get('command', 'python -m bench.serving')}`.")  # fmt: skip


def _name(r: Row, suite: Suite) -> str:
    name = suite.label.get(r.variant, r.variant)
    note = runs_note(r.variant, r.runs_as)
    return f"{name} (runs {note} here)" if note else name


def section_markdown(s: Section) -> list[str]:
    suite = SUITES[s.task]
    lines = [f"## {suite.title}", ""]
    m = s.meta
    base = next((r for r in s.rows if r.variant == suite.baseline), None)
    ours_c, base_c = suite.confs, suite.baseline_confs
    lines += [
        caption(m),
        f"Load: the {m.get('photos', '?')} photos of load-128; closed loop, {m.get('seconds', 0):.0f} s per point after "
        f"a warm-up. Pod: a cgroup of {CPU_CORES} CPU and {MEMORY_BYTES >> 20} MiB (the yardstick: "
        f"{suite.baseline_memory >> 20} MiB). One inference thread everywhere.",
        f"On that CPU `auto` chooses **{m.get('auto', ['?'])[0]}** ({m.get('auto', ['', '?'])[1]}).",
        "",
        f"| variant | model ms | GFLOP/img | % of peak | pipeline ms | HTTP c=1 ms | req/s c=4 (pod) | {suite.ratio} | "
        f"{suite.ratio}, paired | p50 / p95 c=4 ms | AP {_conf(ours_c[0])} | AP {_conf(ours_c[1])} | peak RSS MiB | "
        "cold start s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s.rows:
        is_base = r.variant == suite.baseline
        ratio = r.rps_c4 / base.rps_c4 if base and base.rps_c4 else NAN
        if is_base:
            paired = "1.00×"
        else:
            paired = f"**{r.paired_ratio:.2f}×** ({min(r.paired):.2f}–{max(r.paired):.2f})" if r.paired else "–"
        p50, p95 = r.latency.get(4, (NAN, NAN))
        ap = _f(r.ap, 2) + (f" (at {base_c[0]:g})" if is_base and base_c[0] != ours_c[0] else "")
        ap_low = _f(r.ap_low, 2) + (f" (at {base_c[1]:g})" if is_base and base_c[1] != ours_c[1] else "")
        lines.append(
            f"| {_name(r, suite)} | {_f(r.model_ms)} | {_f(r.gflop, 2)} | {_peak(r)} | {_f(r.pipeline_ms)} | "
            f"{_f(r.e2e_c1_ms)} | {_f(r.rps_c4, 2)} | "
            f"{_f(ratio, 2)}× | {paired} | {_f(p50, 0)} / {_f(p95, 0)} | {ap} | {ap_low} | {_f(r.peak_rss_mib, 0)} | "
            f"{_f(r.cold_start_full_s, 2)} |"
        )
    lines += ["", *_notes(suite, m)]
    if base:
        lines += ["", goal_line(s.rows, base, suite)]
    conc = m.get("concurrency", sorted({c for r in s.rows for c in r.latency}))
    lines += [
        "",
        f"Latency in the pod at each concurrency, p50 / p95 ms. {caption(m)}",
        "",
        "| variant | " + " | ".join(f"c={c}" for c in conc) + " |",
        "|---|" + "---|" * len(conc),
    ]
    for r in s.rows:
        cells = [f"{r.latency[c][0]:.0f} / {r.latency[c][1]:.0f}" if c in r.latency else "–" for c in conc]
        lines.append(f"| {r.variant} | " + " | ".join(cells) + " |")
    errors = sum(r.errors for r in s.rows)
    ooms = {r.variant: r.oom_kills for r in s.rows if r.oom_kills}
    lines += ["", f"Failed requests during the run: {errors}." + (f" OOM kills: {ooms}." if ooms else "")]
    lines += ["", f"![throughput against accuracy]({suite.plots[0]}) ![latency against concurrency]({suite.plots[1]})", ""]
    return lines


def _peak(r: Row) -> str:
    if math.isnan(r.gops) or math.isnan(r.peak_gops):
        return "–"
    return f"{100 * r.gops / r.peak_gops:.0f}% ({r.gops:.0f} of {r.peak_gops:.0f} {r.precision})"


def _notes(suite: Suite, m: dict) -> list[str]:
    yardstick = suite.yardstick
    model = ("- **model ms**: the model call alone (median, in process, full CPU). **pipeline ms**: decode → people in "
             "process. " if suite.task == "pose" else
             "- **model ms**: the model call alone (median, in process, full CPU; the peer's: OpenCV 4.10's forward on "
             "its stretched 416×416 blob, in the reference venv). **pipeline ms**: decode → objects in process (none for "
             "the peer: it runs only in its own venv). ")
    ap = ("- **AP**: COCO keypoint AP (OKS) on coco-pose-dev (32 photos) through the HTTP API, at the serving threshold "
          f"{suite.confs[0]:g} and at {suite.confs[1]:g}." if suite.task == "pose" else
          "- **AP**: person-box AP (pycocotools bbox, category person, every person annotation's `bbox`) on coco-pose-dev "
          f"(32 photos) through the HTTP API of detect-json, at the serving threshold ({suite.confs[0]:g}; the peer serves "
          f"{suite.baseline_confs[0]:g}) and at {suite.confs[1]:g} (the peer's Region layer drops probabilities below the "
          "cfg's 0.2 whatever is asked). The peer runs the published cfg (second mask 0,1,2); ours serve 1,2,3, what the "
          "weights were trained with. On 32 photos a difference under 2 AP decides nothing.")
    return [
        model + "**HTTP c=1**: a real request end to end, one client on a kept-alive connection, no CPU limit (median).",
        "- **GFLOP/img**: the multiply-adds (×2) of every convolution and MatMul at the input shape each photo is served "
        "at (median). **% of peak**: GFLOP per model second, per photo (median), against one core's nominal peak in "
        "GOP/s for the precision the model ran in, at the clock /proc/cpuinfo reports (`python -m bench.flops` derives "
        "it; `python -m bench.kernels` shows where the rest goes). A VM reports its base clock; a share above 100% "
        "means the core ran faster than that (an AVX2 EPYC's boost), so compare shares within one table.",
        f"- **req/s c=4 (pod)**: throughput with 4 clients inside the pod-sized cgroup; **{suite.ratio}** is the ratio to "
        f"{yardstick}'s figure measured earlier in this run. **{suite.ratio}, paired**: the median (and range) of "
        f"{m.get('pairs', '?')} ratios from rounds of {m.get('seconds', 0) / 2:.0f} s that alternate between the variant's "
        f"pod and a pod of {yardstick} kept up for the whole run, so both sides of each ratio see the same host speed.",
        ap,
        "- **peak RSS**: VmHWM of the serving process after the load. **cold start**: process start to `/_/ready` = 200, "
        "full CPU.",
    ]


def goal_line(rows: list[Row], yardstick: Row, suite: Suite) -> str:
    """The issue's goal (`suite.goal`) for each variant: which meet it and, for the rest, what they miss."""
    goal = suite.goal
    reference = next((r for r in rows if r.variant == goal.ap_reference), None)
    floor = reference.ap - goal.ap_margin if reference else NAN
    met, missed = [], []
    for r in rows:
        if r is yardstick:
            continue
        ratio = r.paired_ratio if r.paired else (r.rps_c4 / yardstick.rps_c4 if yardstick.rps_c4 else NAN)
        why = []  # `not x >= y` so that a missing (NaN) figure counts as missed
        if not ratio >= goal.ratio:
            why.append(f"{_f(ratio, 2)}×")
        if not r.ap >= floor:
            why.append(f"AP {_f(r.ap, 2)} < {_f(floor, 2)}")
        if not r.peak_rss_mib <= goal.rss_mib:
            why.append(f"{_f(r.peak_rss_mib, 0)} MiB")
        if goal.cold_start_s is not None and not r.cold_start_full_s <= goal.cold_start_s:
            why.append(f"cold start {_f(r.cold_start_full_s, 2)} s")
        if goal.e2e_over_model is not None and not r.e2e_c1_ms <= goal.e2e_over_model * r.model_ms:
            why.append(f"HTTP {_f(r.e2e_c1_ms / r.model_ms, 2)}× model")
        if why:
            missed.append(f"{r.variant} ({', '.join(why)})")
        else:
            met.append(f"{r.variant} ({_f(ratio, 2)}×)")
    name = "the peer" if goal.ap_reference == yardstick.variant else goal.ap_reference
    ap = f"no lower {suite.metric.split(' (')[0]} than {name}" + (f" less {goal.ap_margin:g}" if goal.ap_margin else "")
    extra = (f", cold start ≤ {goal.cold_start_s:g} s" if goal.cold_start_s is not None else "") + (
        f", HTTP at one client ≤ {goal.e2e_over_model:g}× the model's time" if goal.e2e_over_model is not None else "")
    return (f"**Goal** (the issue's: ≥ {goal.ratio:g}× {suite.yardstick}'s "
            f"req/s in the same pod, paired, at {ap} at the serving threshold, peak RSS ≤ {goal.rss_mib:g} MiB{extra}): "
            f"met by {', '.join(met) or 'none'}; missed by {', '.join(missed) or 'none'}.")


def elsewhere_markdown(path: Path = ELSEWHERE) -> list[str]:
    """The hand-written page, its headings one level down so it nests under this report's title."""
    if not path.is_file():
        return [f"_({path.name} is missing: figures measured on other machines are not shown.)_", ""]
    out, fenced = [], False
    for line in path.read_text().splitlines():
        fenced ^= line.startswith("```")
        out.append("#" + line if line.startswith("#") and not fenced else line)
    return out + [""]


def render(sections: dict[str, Section], elsewhere: Path = ELSEWHERE) -> str:
    lines = [
        "# Serving benchmarks",
        "",
        "Written by `python -m bench.serving` (`make bench`): one section per task, each naming the CPU and the date "
        "it was measured on (a section not rerun is kept from the run that measured it: `benchmarks.json`). The last "
        f"section, figures measured on other machines, is hand-written in [{elsewhere.name}]({elsewhere.name}) and "
        "included here as it is.",
        "",
    ]
    for task, suite in SUITES.items():
        if task in sections:
            lines += section_markdown(sections[task])
        else:
            lines += [f"## {suite.title}", "", f"_Not measured by this report yet: `python -m bench.serving --task {task}`._", ""]
    return "\n".join(lines + elsewhere_markdown(elsewhere))


def load_previous(out: Path) -> dict[str, Section]:
    """The sections of the last report in `out`. A report from before the task split (a bare list of pose
    rows, without where and when they were measured) gives none: its figures, the Xeon's of November
    2026, are in benchmarks-elsewhere.md with their CPU and date."""
    try:
        doc = json.loads((Path(out) / "benchmarks.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {task: Section.from_dict(task, d) for task, d in doc.items() if task in SUITES}


def plots(s: Section, out: Path) -> None:
    if not s.rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suite = SUITES[s.task]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in s.rows:
        ax.scatter(r.ap, r.rps_c4, s=60, marker="s" if r.variant == suite.baseline else "o")
        ax.annotate(r.variant, (r.ap, r.rps_c4), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel(f"{suite.metric} at the serving threshold (coco-pose-dev)")
    ax.set_ylabel("requests/s at concurrency 4 (0.5 CPU pod)")
    ax.set_title(f"{s.task}: throughput against accuracy, per serving variant")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / suite.plots[0], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in s.rows:
        cs = sorted(r.latency)
        ax.plot(cs, [r.latency[c][0] for c in cs], marker="o", label=r.variant)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("p50 latency (ms)")
    ax.set_xticks(s.meta.get("concurrency", sorted({c for r in s.rows for c in r.latency})))
    ax.set_title(f"{s.task}: latency against concurrency in a 0.5 CPU pod")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / suite.plots[1], dpi=100)
    plt.close(fig)


def write(sections: dict[str, Section], out: Path, fresh: set[str]) -> Path:
    """benchmarks.md, benchmarks.json and the plots of the `fresh` sections in `out`; returns the .md path."""
    out.mkdir(parents=True, exist_ok=True)
    for task in fresh:
        plots(sections[task], out)
    (out / "benchmarks.json").write_text(json.dumps({t: s.to_dict() for t, s in sections.items()}, indent=1, default=str))
    md = out / "benchmarks.md"
    md.write_text(render(sections))
    return md
