"""Settings from the environment and the choice of variant."""

from __future__ import annotations

import pytest

from cloudpose.config import ModelSettings, Settings, env_table
from cloudpose.tasks import TASKS
from cloudpose.variants import choose, parse

POSE = TASKS["pose"]


def test_defaults_suit_a_small_pod():
    s = Settings.from_env({})
    assert (s.threads, s.max_body_bytes, s.max_pixels, s.port) == (1, 10 * 1024 * 1024, 40_000_000, 8080)
    assert s.inflight >= 1
    assert POSE.settings({}).conf == 0.25


def test_environment_overrides_and_bad_values_are_named():
    s = Settings.from_env({"POSE_MAX_INFLIGHT": "3", "POSE_CONF": "0.5", "POSE_CORS_ORIGINS": "http://a, http://b"})
    assert (s.inflight, s.cors_origin_list) == (3, ["http://a", "http://b"])
    assert POSE.settings(s.env).conf == 0.5, "each task reads its own knobs from the same environment"
    with pytest.raises(ValueError, match="POSE_THREADS='two'"):
        Settings.from_env({"POSE_THREADS": "two"})
    with pytest.raises(ValueError, match="POSE_CONF='high'"):
        POSE.settings({"POSE_CONF": "high"})


def test_every_setting_is_documented():
    rows = env_table({t.prefix: t.model.defaults for t in TASKS.values() if t.model})
    assert {"POSE_VARIANT", "POSE_CONF", "POSE_MAX_BODY_MB"} <= {env for env, _, _ in rows}
    for env, _default, help_text in rows:
        assert env and help_text


def test_variant_names_round_trip_and_bad_names_are_explained():
    for name in ("ort-fp32-640", "ort-fp32-512-square", "ultralytics-fp32-640"):
        assert parse(name, POSE.model).name == name
    for bad in ("ort-fp32", "trt-fp32-640", "ort-fp32-500", "ort-fp99-640", "ultralytics-int8-640"):
        with pytest.raises(ValueError):
            parse(bad, POSE.model)


def test_forced_variant_and_image_size(settings):
    variant, reason = choose(POSE.model, ModelSettings.from_env("POSE", {"POSE_VARIANT": "ort-fp32-512"}), settings.model_dir)
    assert variant.imgsz == 512 and "forced" in reason
    knobs = ModelSettings.from_env("POSE", {"POSE_IMGSZ": "480", "POSE_VARIANT": "ort-fp32-640"})
    variant, reason = choose(POSE.model, knobs, settings.model_dir)
    assert variant.imgsz == 480 and "POSE_IMGSZ" in reason


def test_cpu_quota_is_read_from_the_process_own_cgroup():
    """A process in a 0.5-CPU cgroup runs one inference at a time, even on a bigger host."""
    import subprocess
    import sys

    from loadtest.cgroup import Cgroup, available

    if available():
        pytest.skip(f"cannot create cgroups here: {available()}")
    code = "from cloudpose.config import cpu_quota, Settings; print(cpu_quota(), Settings.from_env({}).inflight)"
    with Cgroup("quota-test", 0.5, 512 << 20) as cg:
        out = subprocess.run([*cg.prefix(), sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0.5", "1"], out.stderr


def test_the_readme_documents_every_setting():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## The models")]
    rows = env_table({t.prefix: t.model.defaults for t in TASKS.values() if t.model})
    missing = [env for env, _, _ in rows if f"`{env}`" not in table]
    assert not missing, f"README's configuration table lacks {missing}"
