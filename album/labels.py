"""A photo's labels from detect-json's objects: distinct labels, each with its best accuracy.

The sample asks Rekognition for at most 10 labels above a minimum confidence; detect-json gives one
entry per detected object (three people → three "person"), so labels are merged by name first.
"""

from __future__ import annotations

from typing import Any


def distinct_labels(objects: list[dict[str, Any]], min_accuracy: float, max_labels: int) -> list[dict[str, Any]]:
    """[{"label", "accuracy"}], best accuracy first (ties by name), accuracy ≥ min_accuracy, at most max_labels."""
    best: dict[str, float] = {}
    for obj in objects:
        label, accuracy = obj.get("label"), obj.get("accuracy")
        if not isinstance(label, str) or not label or not isinstance(accuracy, (int, float)):
            continue
        if accuracy >= min_accuracy and accuracy > best.get(label, -1.0):
            best[label] = float(accuracy)
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:max_labels]
    return [{"label": label, "accuracy": round(accuracy, 4)} for label, accuracy in ranked]
