"""Letterbox planning and NMS: the pure steps between pixels and people."""

from __future__ import annotations

import numpy as np
import pytest

from cloudpose.boxes import nms, nms_per_class, points_to_original, to_original
from cloudpose.letterbox import plan, prepare, to_tensor


FIXED = ((640, 480), (480, 640), (640, 640))


@pytest.mark.parametrize(
    "size, shapes, expected",
    [
        ((640, 427), None, (640, 448)),  # minimal rectangle, as Ultralytics' predict
        ((427, 640), None, (448, 640)),
        ((4000, 3000), None, (640, 480)),
        ((100, 1000), None, (64, 640)),
        ((640, 427), FIXED, (640, 480)),  # fixed shapes: the smallest that holds the image
        ((427, 640), FIXED, (480, 640)),
        ((640, 600), FIXED, (640, 640)),
        ((100, 1000), FIXED, (480, 640)),
        ((640, 427), ((640, 640),), (640, 640)),  # square
    ],
)
def test_plan_input_shapes(size, shapes, expected):
    box = plan(*size, 640, shapes=shapes)
    assert (box.input_w, box.input_h) == expected
    assert box.pad_x == round((expected[0] - round(size[0] * box.gain_x)) / 2 - 0.1)  # centred
    letterboxed, _ = prepare(np.zeros((size[1], size[0], 3), np.uint8), 640, shapes=shapes)
    assert letterboxed.shape == (expected[1], expected[0], 3) and letterboxed.dtype == np.uint8
    tensor = to_tensor(letterboxed)
    assert tensor.shape == (1, 3, expected[1], expected[0]) and tensor.dtype == np.float32


def test_letterbox_round_trip_maps_back_to_original_pixels():
    box = plan(1000, 500, 640)
    assert (box.input_w, box.input_h, box.pad_x, box.pad_y) == (640, 320, 0, 0)
    corners = np.array([[0, 0, 640, 320]], np.float32)
    boxes = to_original(corners, box, 1000, 500, 2000, 1000)
    assert boxes.tolist() == [[0, 0, 2000, 1000]]  # with a 2× reduced decode in between
    points = points_to_original(np.array([[[320, 160, 0.9], [700, -5, 0.1]]], np.float32), box, 1000, 500, 2000, 1000)
    assert points.tolist() == [[[1000, 500, pytest.approx(0.9)], [2000, 0, pytest.approx(0.1)]]]  # clipped, scores kept


def test_stretch_fills_the_square_and_maps_back_per_axis():
    box = plan(800, 400, 416, stretch=True)
    assert (box.input_w, box.input_h, box.pad_x, box.pad_y) == (416, 416, 0, 0)
    letterboxed, _ = prepare(np.zeros((400, 800, 3), np.uint8), 416, stretch=True)
    assert letterboxed.shape == (416, 416, 3)
    assert to_original(np.array([[0, 0, 208, 416]], np.float32), box, 800, 400, 800, 400).tolist() == [[0, 0, 400, 400]]


def test_nms_keeps_the_best_of_overlaps_and_all_disjoint_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    scores = np.array([0.6, 0.9, 0.5, 0.3], np.float32)
    assert nms(boxes, scores, 0.7, 300).tolist() == [1, 2]  # 0 and 3 overlap the best box by > 0.7
    assert nms(boxes, scores, 0.95, 300).tolist() == [1, 0, 2, 3]
    assert nms(boxes, scores, 0.95, 2).tolist() == [1, 0]


def test_nms_per_class_never_suppresses_across_classes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [-5, -5, 3, 3]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 1, 1])
    # 1 overlaps 0 (same class): gone; 2 overlaps 0 exactly but is another class: kept; 3 is apart.
    assert nms_per_class(boxes, scores, classes, 0.5, 100).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.5, 100).tolist() == [0, 3]  # class-agnostic NMS would lose the second class
