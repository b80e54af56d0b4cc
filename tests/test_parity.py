"""The served model agrees with Ultralytics' own predict on the same weights: same people, within 1 px."""

from __future__ import annotations

import numpy as np
import pytest

from cloudpose.imaging import decode

from .conftest import dev_images, load_images

TOLERANCE_PX = 1.0


@pytest.fixture(scope="module")
def images():
    return dev_images() + load_images()[::4]  # 32 dev photos + 32 of the load set


def test_onnxruntime_matches_ultralytics_within_a_pixel(fp32_model, reference_model, images):
    worst, people = 0.0, 0
    for path in images:
        image = decode(path.read_bytes(), max_pixels=10**9, min_side=640)
        ours, ref = fp32_model(image), reference_model(image)
        assert ours.count == ref.count, f"{path.name}: {ours.count} people vs Ultralytics' {ref.count}"
        if ours.count:
            worst = max(worst, np.abs(ours.boxes - ref.boxes).max(), np.abs(ours.keypoints[..., :2] - ref.keypoints[..., :2]).max())
            assert np.abs(ours.scores - ref.scores).max() < 1e-3
            assert np.abs(ours.keypoints[..., 2] - ref.keypoints[..., 2]).max() < 1e-3
        people += ours.count
    assert people > 50, "the parity set should contain people"
    assert worst <= TOLERANCE_PX, f"worst difference {worst:.3f} px"
