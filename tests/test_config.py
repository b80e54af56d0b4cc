"""Settings from the environment and the choice of variant."""

from __future__ import annotations

import pytest

from cloudpose.config import Settings, env_table
from cloudpose.variants import choose, parse


def test_defaults_suit_a_small_pod():
    s = Settings.from_env({})
    assert (s.threads, s.max_body_bytes, s.max_pixels, s.port, s.conf) == (1, 10 * 1024 * 1024, 40_000_000, 8080, 0.25)
    assert s.inflight >= 1


def test_environment_overrides_and_bad_values_are_named():
    s = Settings.from_env({"POSE_MAX_INFLIGHT": "3", "POSE_CONF": "0.5", "POSE_CORS_ORIGINS": "http://a, http://b"})
    assert (s.inflight, s.conf, s.cors_origin_list) == (3, 0.5, ["http://a", "http://b"])
    with pytest.raises(ValueError, match="POSE_THREADS='two'"):
        Settings.from_env({"POSE_THREADS": "two"})


def test_every_setting_is_documented():
    for env, _default, help_text in env_table():
        assert env and help_text


def test_variant_names_round_trip_and_bad_names_are_explained():
    for name in ("ort-fp32-640", "ort-fp32-512-square", "ultralytics-fp32-640"):
        assert parse(name).name == name
    for bad in ("ort-fp32", "trt-fp32-640", "ort-fp32-500", "ort-fp99-640"):
        with pytest.raises(ValueError):
            parse(bad)


def test_forced_variant_and_image_size():
    variant, reason = choose(Settings.from_env({"POSE_VARIANT": "ort-fp32-512"}))
    assert variant.imgsz == 512 and "forced" in reason
    variant, reason = choose(Settings.from_env({"POSE_IMGSZ": "480", "POSE_VARIANT": "ort-fp32-640"}))
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
