"""The album's pure parts, without servers: settings, labels, sniffing, keys, cursors, failure reasons,
file names, the migration files, the gateway's request body, and the page's CSP (the functions' own)."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone

import pytest
from temporalio.exceptions import ApplicationError

from album import keys
from album.api import STATIC, display_name, photo_json, safe_download_name
from album.config import AlbumSettings, documented
from album.db import decode_cursor, encode_cursor, migrations, result_row
from album.gateway import request_body
from album.labels import distinct_labels
from album.sniff import OCTET_STREAM, sniff
from album.workflow import NON_RETRYABLE, STEP_RETRY, failure_reason

pytestmark = pytest.mark.timeout(60)


def test_settings_defaults_and_environment():
    s = AlbumSettings.from_env({})
    assert s.gateway_url == "http://127.0.0.1:60000" and s.label_min_accuracy == 0.5 and s.max_labels == 10
    assert s.function_url("detect-json") == "http://127.0.0.1:60000/function/detect-json"
    s = AlbumSettings.from_env({"ALBUM_GATEWAY_URL": "http://gw:8080/", "ALBUM_LABEL_MIN_ACCURACY": "0.7",
                                "ALBUM_FUNCTION_URLS": "detect-json=http://detect.cloudpose.svc/"})  # fmt: skip
    assert s.label_min_accuracy == 0.7
    assert s.function_url("pose-json") == "http://gw:8080/function/pose-json"
    assert s.function_url("detect-json") == "http://detect.cloudpose.svc"
    assert s.workflow_url("a" * 32, "r1").endswith(f"/namespaces/default/workflows/{'a' * 32}/r1/history")
    for bad in ({"ALBUM_LABEL_MIN_ACCURACY": "2"}, {"ALBUM_MAX_LABELS": "x"}, {"ALBUM_FUNCTION_URLS": "nope=http://x"},
                {"ALBUM_FUNCTION_URLS": "pose-json=ftp://x"}):  # fmt: skip
        with pytest.raises(ValueError):
            AlbumSettings.from_env(bad)
    names = [name for name, _, _ in documented()]
    assert len(names) == len(set(names)) and "ALBUM_GATEWAY_URL" in names


def test_distinct_labels_best_accuracy_threshold_and_cap():
    objects = [{"label": "person", "accuracy": 0.61}, {"label": "person", "accuracy": 0.93}, {"label": "dog", "accuracy": 0.49},
               {"label": "cup", "accuracy": 0.5}, {"label": "", "accuracy": 0.9}, {"accuracy": 0.9}, {"label": "x", "accuracy": "hi"}]  # fmt: skip
    assert distinct_labels(objects, 0.5, 10) == [{"label": "person", "accuracy": 0.93}, {"label": "cup", "accuracy": 0.5}]
    many = [{"label": f"l{i:02d}", "accuracy": 0.9 - i / 100} for i in range(15)]
    assert [x["label"] for x in distinct_labels(many, 0.0, 10)] == [f"l{i:02d}" for i in range(10)]
    assert distinct_labels([], 0.5, 10) == []


@pytest.mark.parametrize(
    "head, kind",
    [(b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"), (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"), (b"GIF89a\x01\x00", "image/gif"),
     (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"), (b"\x00\x00\x00\x18ftypheic\x00\x00", "image/heic"),
     (b"<svg xmlns='http://www.w3.org/2000/svg'>", OCTET_STREAM), (b"<html><script>", OCTET_STREAM), (b"", OCTET_STREAM)],
)  # fmt: skip
def test_sniff_reads_the_bytes_not_the_name(head, kind):
    assert sniff(head) == kind


def test_keys_are_generated_never_from_names():
    a, p = keys.new_id(), keys.new_id()
    assert keys.is_id(a) and keys.is_id(p) and a != p
    assert keys.original_key(a, p) == f"albums/{a}/originals/{p}"
    assert keys.thumbnail_key(a, p, "PNG") == f"albums/{a}/thumbnails/{p}.png"
    assert keys.thumbnail_type(keys.thumbnail_key(a, p, "JPEG")) == keys.thumbnail_type("JPEG") == "image/jpeg"
    assert keys.thumbnail_type("x.bin") == "application/octet-stream"
    assert not keys.is_id("../../etc/passwd") and not keys.is_id("A" * 32)


def test_cursor_round_trip_and_rejects_forgeries():
    stamp = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    cursor = encode_cursor(stamp, "b" * 32)
    assert decode_cursor(cursor) == (stamp, "b" * 32)
    for bad in ("", "!!!", base64.urlsafe_b64encode(b"2026-01-01|x'; DROP TABLE photos;--").decode(),
                base64.urlsafe_b64encode(f"2026-01-01T00:00:00|{'b' * 32}".encode()).decode()):  # fmt: skip
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_failure_reason_names_type_message_and_step():
    kind, reason = failure_reason(ApplicationError("GIF is not supported", type="UnsupportedImageType"))
    assert kind == "UnsupportedImageType" and reason == "UnsupportedImageType: GIF is not supported"
    assert "UnsupportedImageType" in NON_RETRYABLE and "FunctionRejected" in NON_RETRYABLE
    assert STEP_RETRY.maximum_attempts == 3 and STEP_RETRY.backoff_coefficient == 1.5
    assert STEP_RETRY.initial_interval.total_seconds() == 1


def test_display_and_download_names():
    assert display_name("C:\\Users\\me\\photo.jpg") == "photo.jpg"
    assert display_name("../../a\x00b\n.png") == "ab.png"
    assert display_name("") is None and len(display_name("x" * 1000)) == 255
    assert safe_download_name('evil"; filename=x.html') == "evil_filename_x.html"
    assert safe_download_name(None) == "file" and safe_download_name("ünïcode.txt") == "n_code.txt"


def test_migrations_are_numbered_and_plain_sql():
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert "CREATE TABLE photos" in found[0].sql and "status" in found[0].sql


def test_result_row_maps_metadata_to_columns():
    meta = {"creation_time": "2024-05-17T14:03:22", "latitude": {"degrees": 1, "minutes": 2, "seconds": 3.5, "direction": "N"},
            "longitude": None, "make": "m", "model": "x", "width": 3, "height": 4, "file_size": 5, "format": "PNG"}  # fmt: skip
    row = result_row(meta, [], {"key": "k", "width": 1, "height": 2}, {})
    assert row["latitude_seconds"] == 3.5 and row["longitude_direction"] is None and row["thumbnail_key"] == "k"
    shown = photo_json({"id": "a" * 32, "album_id": "b" * 32, "status": "SUCCEEDED", **row}, AlbumSettings())
    assert shown["metadata"]["latitude"] == meta["latitude"] and shown["metadata"]["longitude"] is None
    assert shown["thumbnail"]["url"] == f"/api/photos/{'a' * 32}/thumbnail"


def test_request_body_is_the_functions_json():
    body = json.loads(request_body('id "1"', b"\x00\xffdata"))
    assert body == {"id": 'id "1"', "image": base64.b64encode(b"\x00\xffdata").decode()}


def test_page_uses_the_functions_csp_and_loads_nothing_inline():
    html = (STATIC / "index.html").read_text()
    assert all('src="' in tag for tag in re.findall(r"<script\b[^>]*>", html))
    assert not re.search(r"\son\w+\s*=", html) and not re.search(r"\sstyle\s*=", html) and "<style" not in html
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html)
    script = (STATIC / "app.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script


def test_every_setting_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "album.md").read_text()
    missing = [name for name, _, _ in documented() if f"`{name}`" not in doc]
    assert not missing, f"docs/album.md does not describe {missing}"
