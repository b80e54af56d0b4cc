"""The whole album system, real and on loopback, started by its own command (`python -m album.local up`):
PostgreSQL, SeaweedFS, the Temporal dev server, the functions (`python -m cloudpose.local`), the worker and
the album service. Every row is read from PostgreSQL; expected metadata, labels and people come from
calling the functions directly with the same bytes.

Covers the issue's tests: a JPEG with EXIF GPS and a PNG end SUCCEEDED with the exact metadata, a thumbnail
≤ 250 px and detect-json's labels; a GIF and a non-image end FAILED with their reasons; a second start of a
photo's workflow is refused; the page in headless Chromium; the worker killed mid-workflow; detect-json
stopped and brought back within the retry window; 100 photos in a burst; `down` keeps the data.

ALBUM_TEST_FUNCTIONS_PORT=<port> uses functions already served there (e.g. by `make up`) instead of
starting cloudpose.local: quicker when rerunning.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational
from psycopg.rows import dict_row

from album.config import FUNCTION_NAMES
from album.labels import distinct_labels
from album.local import DEFAULT_PORTS, LocalSystem
from album.postgres import bin_dir
from album.processes import Managed, alive, free_port, group_listening, wait_for

from .conftest import LOAD_128, chromium

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
DOCS_SHOT = ROOT / "docs" / "album-page.png"
XSS = "<img src=x onerror=alert(1)>"
FINAL = ("SUCCEEDED", "FAILED")
pytestmark = pytest.mark.timeout(600)


# ---- the system ----------------------------------------------------------------------------------


def cli(home: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "album.local", *args, "--home", str(home)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def system() -> Iterator[LocalSystem]:
    if bin_dir() is None:
        pytest.skip("PostgreSQL is not installed: apt-get install -y postgresql")
    from cloudpose.functions import FUNCTIONS

    missing = sorted(set(FUNCTION_NAMES) - set(FUNCTIONS))
    assert not missing, f"the local default does not serve {missing} yet (cloudpose.functions.FUNCTIONS)"
    home = Path(tempfile.mkdtemp(prefix="album-system-", dir="/tmp"))
    home.chmod(0o711)  # the database's system user must be able to enter it
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(DEFAULT_PORTS):
        ports = {name: free_port() for name in DEFAULT_PORTS}
    if os.environ.get("ALBUM_TEST_FUNCTIONS_PORT"):
        ports["functions"] = int(os.environ["ALBUM_TEST_FUNCTIONS_PORT"])
    (home / "system.json").write_text(json.dumps({"ports": ports}))
    up = cli(home, "up")
    try:
        assert up.returncode == 0, f"up failed:\n{up.stdout}\n{up.stderr}\n" + logs(home)
        system = LocalSystem(home)
        system.up_output = up.stdout  # type: ignore[attr-defined]
        yield system
    finally:
        down = cli(home, "down", timeout=200)
        if (home / "logs").is_dir():  # every part's log, for a failure's post-mortem
            shutil.copytree(home / "logs", ARTIFACTS / "album-logs", dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)
        assert down.returncode == 0, down.stderr


def logs(home: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted((home / "logs").glob("*.log")))


@pytest.fixture(scope="module")
def api(system) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def db(system) -> Iterator[psycopg.Connection]:
    with psycopg.connect(system.cluster.url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def rows(db: psycopg.Connection, ids: list[str]) -> dict[str, dict]:
    found = db.execute("SELECT * FROM photos WHERE id = ANY(%s)", (ids,)).fetchall()
    return {r["id"]: r for r in found}


def wait_final(db: psycopg.Connection, ids: list[str], timeout: float = 180) -> dict[str, dict]:
    """Poll PostgreSQL until every photo's row is SUCCEEDED or FAILED (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rows(db, ids)
        if len(found) == len(ids) and all(r["status"] in FINAL for r in found.values()):
            return found
        time.sleep(0.2)
    pending = {i: r["status"] for i, r in rows(db, ids).items() if r["status"] not in FINAL}
    raise AssertionError(f"{len(pending)} of {len(ids)} photos not final after {timeout:.0f} s: {pending}")


def new_album(api: httpx.Client, name: str = "test") -> str:
    r = api.post("/api/albums", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def upload(api: httpx.Client, album: str, files: list[tuple[str, bytes, str]]) -> list[dict]:
    r = api.post(f"/api/albums/{album}/photos", files=[("files", f) for f in files])
    assert r.status_code == 202, r.text
    return r.json()["photos"]


def call_function(system: LocalSystem, name: str, data: bytes) -> dict:
    r = httpx.post(f"{system.gateway_url}/function/{name}", timeout=60,
                   json={"id": "expected", "image": base64.b64encode(data).decode()})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()


def expected_labels(system: LocalSystem, data: bytes) -> list[dict]:
    s = system.settings()
    return distinct_labels(call_function(system, "detect-json", data)["objects"], s.label_min_accuracy, s.max_labels)


def temporal(system: LocalSystem, coro_fn):
    """Run `coro_fn(client)` against the system's Temporal (bounded)."""
    from temporalio.client import Client

    async def run():
        client = await Client.connect(f"127.0.0.1:{system.ports['temporal']}")
        return await coro_fn(client)

    return asyncio.run(asyncio.wait_for(run(), 60))


def photos(n: int, start: int = 0) -> list[Path]:
    found = sorted(LOAD_128.glob("*.jpg"))
    if len(found) < start + n:
        pytest.skip(f"needs {start + n} photos in {LOAD_128} (set CLOUDPOSE_DATA)")
    return found[start : start + n]


def exif_jpeg(path: Path) -> bytes:
    """A real photo re-saved by Pillow with a camera's EXIF: capture time, GPS, make and an HTML-ish model."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = f"EOS {XSS}"
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: "2024:05:17 14:03:22"}
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (IFDRational(37), IFDRational(46), IFDRational(297, 10)),
        ExifTags.GPS.GPSLongitudeRef: "W", ExifTags.GPS.GPSLongitude: (IFDRational(122), IFDRational(25), IFDRational(99, 10)),
    }  # fmt: skip
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, "JPEG", exif=exif, quality=92)
    return buffer.getvalue()


def png_of(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def gif_of(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, "GIF")
    return buffer.getvalue()


# ---- the command and the service ---------------------------------------------------------------------


def test_up_prints_the_url_and_every_part_listens_on_loopback(system):
    assert f"Albums on {system.url}/" in system.up_output
    status = system.status()
    assert all(info["running"] for info in status.values()), status
    for part, info in status.items():
        if info["external"]:
            continue
        sockets = group_listening(info["pid"])
        assert all(ip == "127.0.0.1" for _, ip, _ in sockets), f"{part}: {sockets}"
    assert cli(system.home, "status").returncode == 0


def test_up_again_is_a_no_op(system):
    before = {part: info["pid"] for part, info in system.status().items()}
    again = cli(system.home, "up", timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == len(before)
    assert {part: info["pid"] for part, info in system.status().items()} == before


def test_albums_api_and_its_errors(api):
    album = new_album(api, XSS)
    listed = api.get("/api/albums").json()["albums"]
    assert any(a["id"] == album and a["name"] == XSS for a in listed)
    assert api.get(f"/api/albums/{album}").json()["counts"] == {"RUNNING": 0, "SUCCEEDED": 0, "FAILED": 0}
    for path, code in (("/api/albums/" + "0" * 32, "album_not_found"), ("/api/albums/x/photos", "album_not_found"),
                       ("/api/photos/" + "0" * 32, "photo_not_found"), ("/api/nothing", "not_found")):  # fmt: skip
        r = api.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == code, (path, r.text)
    assert api.post("/api/albums", json={"name": "  "}).json()["error"]["code"] == "invalid_request"
    assert api.post("/api/albums", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
    r = api.get(f"/api/albums/{album}/photos", params={"cursor": "forged"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"
    schema = api.get("/openapi.json").json()
    assert {"/api/albums", "/api/albums/{album_id}/photos", "/api/photos/{photo_id}", "/api/photos/{photo_id}/thumbnail",
            "/api/photos/{photo_id}/original"} <= set(schema["paths"])  # fmt: skip
    assert "multipart/form-data" in schema["paths"]["/api/albums/{album_id}/photos"]["post"]["requestBody"]["content"]
    assert api.get("/docs").status_code == 200


def test_upload_limits(system, api):
    album = new_album(api, "limits")
    limit = system.settings().max_upload_bytes
    answer = upload(api, album, [("empty.jpg", b"", "image/jpeg"), ("big.jpg", b"\xff\xd8\xff" + b"\0" * limit, "image/jpeg")])
    assert [(p["status"], p["error"]["code"]) for p in answer] == [("REJECTED", "empty_file"), ("REJECTED", "file_too_large")]
    assert api.get(f"/api/albums/{album}/photos").json()["photos"] == [], "a rejected file leaves no row"
    assert api.post(f"/api/albums/{album}/photos", data={"x": "1"}).json()["error"]["code"] in ("no_files", "unsupported_media_type")
    r = api.post(f"/api/albums/{album}/photos", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    # A body announced as larger than max_files × max_upload is refused before it is read.
    conn = http.client.HTTPConnection("127.0.0.1", system.ports["api"], timeout=30)
    conn.putrequest("POST", f"/api/albums/{album}/photos")
    conn.putheader("Content-Type", "multipart/form-data; boundary=b")
    conn.putheader("Content-Length", str(10**12))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"]["code"] == "request_too_large"
    conn.close()


# ---- the pipeline -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four(system, api, db):
    """The issue's four uploads, in one request: EXIF JPEG, PNG, GIF, a text file; their final rows."""
    jpeg_src, png_src, gif_src = photos(3)
    files = {
        "camera.jpg": (exif_jpeg(jpeg_src), "image/jpeg"),
        "photo.png": (png_of(png_src), "image/png"),
        "anim.gif": (gif_of(gif_src), "image/gif"),
        "notes.jpg": (b"these are my notes, not a photo\n" * 10, "image/jpeg"),  # lies about its type
    }
    album = new_album(api, "the four")
    started = time.monotonic()
    answer = upload(api, album, [(name, data, kind) for name, (data, kind) in files.items()])
    assert [p["status"] for p in answer] == ["RUNNING"] * 4, answer
    ids = {p["file_name"]: p["id"] for p in answer}
    final = wait_final(db, list(ids.values()), timeout=120)
    return {"files": files, "ids": ids, "rows": {name: final[i] for name, i in ids.items()}, "album": album,
            "seconds": time.monotonic() - started}  # fmt: skip


def test_jpeg_with_gps_and_png_succeed_with_exact_metadata_thumbnail_labels_and_people(system, api, four):
    for name in ("camera.jpg", "photo.png"):
        data, _ = four["files"][name]
        row = four["rows"][name]
        assert row["status"] == "SUCCEEDED" and row["error"] is None, (name, row["error"])
        meta = call_function(system, "photo-metadata", data)
        assert row["format"] == meta["format"] == ("JPEG" if name.endswith(".jpg") else "PNG")
        assert (row["width"], row["height"], row["file_size"]) == (meta["width"], meta["height"], len(data))
        assert (row["creation_time"], row["make"], row["model"]) == (meta["creation_time"], meta["make"], meta["model"])
        assert row["labels"] == expected_labels(system, data), name
        pose = call_function(system, "pose-json", data)
        assert row["people_count"] == pose["count"] and len(row["people"]["keypoints"]) == pose["count"]
        assert row["people"]["keypoints"] == pose["keypoints"]
        assert row["run_id"] and row["upload_time"] <= row["finished_at"]
        assert {"extract-metadata", "make-thumbnail", "detect-labels", "detect-people", "workflow"} <= set(row["timings"])
        thumb = api.get(f"/api/photos/{row['id']}/thumbnail")
        assert thumb.status_code == 200 and thumb.headers["x-content-type-options"] == "nosniff"
        with Image.open(io.BytesIO(thumb.content)) as img:
            assert img.format == row["format"] and max(img.size) <= 250 and max(img.size) == 250
            assert img.size == (row["thumbnail_width"], row["thumbnail_height"])
        assert row["thumbnail_key"] == f"albums/{four['album']}/thumbnails/{row['id']}.{'jpg' if name.endswith('.jpg') else 'png'}"
    camera = four["rows"]["camera.jpg"]
    assert camera["creation_time"] == "2024-05-17T14:03:22" and camera["make"] == "Canon"
    assert camera["model"] == f"EOS {XSS}"
    assert (camera["latitude_degrees"], camera["latitude_minutes"], camera["latitude_seconds"], camera["latitude_direction"]) == (37, 46, 29.7, "N")
    assert (camera["longitude_degrees"], camera["longitude_minutes"], camera["longitude_seconds"], camera["longitude_direction"]) == (122, 25, 9.9, "W")
    assert four["rows"]["photo.png"]["latitude_direction"] is None


def test_gif_and_non_image_fail_with_their_reasons(system, four):
    gif, notes = four["rows"]["anim.gif"], four["rows"]["notes.jpg"]
    assert gif["status"] == "FAILED" and gif["error"].startswith("UnsupportedImageType: GIF is not supported")
    assert notes["status"] == "FAILED" and notes["error"].startswith("UnsupportedImageType: not a readable image")
    assert notes["content_type"] == "application/octet-stream", "sniffed from the bytes, not the name or the header"
    assert gif["labels"] == [] and gif["thumbnail_key"] is None and notes["thumbnail_key"] is None

    async def describe(client):
        return {name: await client.get_workflow_handle(four["ids"][name]).describe() for name in four["ids"]}

    from temporalio.client import WorkflowExecutionStatus

    described = temporal(system, describe)
    assert described["camera.jpg"].status == WorkflowExecutionStatus.COMPLETED
    assert described["anim.gif"].status == WorkflowExecutionStatus.FAILED
    assert described["notes.jpg"].status == WorkflowExecutionStatus.FAILED
    assert {name: d.run_id for name, d in described.items()} == {n: r["run_id"] for n, r in four["rows"].items()}


def test_photo_api_streams_and_links(api, four):
    row = four["rows"]["camera.jpg"]
    shown = api.get(f"/api/photos/{row['id']}").json()
    assert shown["metadata"]["latitude"] == {"degrees": 37, "minutes": 46, "seconds": 29.7, "direction": "N"}
    assert shown["workflow"]["url"].endswith(f"/workflows/{row['id']}/{row['run_id']}/history")
    original = api.get(f"/api/photos/{row['id']}/original")
    assert original.content == four["files"]["camera.jpg"][0] and original.headers["content-type"] == "image/jpeg"
    notes = api.get(f"/api/photos/{four['rows']['notes.jpg']['id']}/original")
    assert notes.headers["content-type"] == "application/octet-stream"
    assert notes.headers["content-disposition"].startswith("attachment") and notes.headers["x-content-type-options"] == "nosniff"
    page = api.get(f"/api/albums/{four['album']}/photos", params={"limit": 3}).json()
    rest = api.get(f"/api/albums/{four['album']}/photos", params={"limit": 3, "cursor": page["next_cursor"]}).json()
    assert len(page["photos"]) == 3 and len(rest["photos"]) == 1 and rest["next_cursor"] is None
    assert {p["id"] for p in page["photos"] + rest["photos"]} == set(four["ids"].values())
    assert page["counts"] == {"RUNNING": 0, "SUCCEEDED": 2, "FAILED": 2}
    assert api.get(f"/api/photos/{four['rows']['anim.gif']['id']}/thumbnail").json()["error"]["code"] == "no_thumbnail"


def test_a_second_start_of_a_photos_workflow_is_refused(system, four, db):
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from album.workflow import PhotoInput

    row = four["rows"]["camera.jpg"]
    photo = PhotoInput(row["id"], row["album_id"], row["original_key"], row["content_type"])

    async def start_again(client):
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow("PhotoPipeline", photo, id=row["id"], task_queue=system.settings().task_queue,
                                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)  # fmt: skip
        for _ in range(50):  # the visibility store lags the history a little: bounded wait for the listing
            found = [w.run_id async for w in client.list_workflows(f"WorkflowId = '{row['id']}'")]
            if found:
                return found
            await asyncio.sleep(0.2)
        return []

    assert temporal(system, start_again) == [row["run_id"]], "exactly one run of the photo's workflow"
    assert rows(db, [row["id"]])[row["id"]]["updated_at"] == row["updated_at"], "the row was not touched"


# ---- the page, in headless Chromium -------------------------------------------------------------------

@pytest.fixture(scope="module")
def driver():
    with chromium(1280, 900) as drv:
        yield drv


def wait(drv, condition, timeout: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout, poll_frequency=0.1).until(condition)


@pytest.mark.browser
def test_page_creates_an_album_uploads_two_photos_and_shows_them(system, driver, db, tmp_path):
    from selenium.webdriver.common.by import By

    one, two = tmp_path / "street.jpg", tmp_path / "camera.jpg"
    one.write_bytes(photos(1, start=3)[0].read_bytes())
    two.write_bytes(exif_jpeg(photos(1, start=0)[0]))  # a living room: a person, a TV, chairs
    driver.get_log("browser"), driver.get_log("performance")
    driver.get(f"{system.url}/")
    wait(driver, lambda d: d.find_element(By.ID, "limits").text.startswith("Limits: 7.0 MB per photo"))
    driver.find_element(By.ID, "album-name").send_keys(f"Trip {XSS}")
    driver.find_element(By.ID, "create").click()
    wait(driver, lambda d: d.find_element(By.ID, "album-title").text == f"Trip {XSS}")
    driver.find_element(By.ID, "files").send_keys(f"{one}\n{two}")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#uploads li")) == 2)
    wait(driver, lambda d: [li.get_attribute("data-state") for li in d.find_elements(By.CSS_SELECTOR, "#uploads li")] == ["done", "done"])
    wait(driver, lambda d: d.execute_script(
        "const imgs = [...document.querySelectorAll('#grid article[data-status=SUCCEEDED] img')];"
        "return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0)"))  # fmt: skip
    ids = [li.get_attribute("data-photo-id") for li in driver.find_elements(By.CSS_SELECTOR, "#uploads li")]
    stored = rows(db, ids)
    assert all(r["status"] == "SUCCEEDED" for r in stored.values())
    for photo_id, row in stored.items():
        article = driver.find_element(By.CSS_SELECTOR, f"article[data-photo-id='{photo_id}']")
        labels = [li.text for li in article.find_elements(By.CSS_SELECTOR, ".labels li")]
        assert labels == [f"{x['label']} {round(x['accuracy'] * 100)}%" for x in row["labels"]]
        facts = dict(zip([e.text for e in article.find_elements(By.TAG_NAME, "dt")], [e.text for e in article.find_elements(By.TAG_NAME, "dd")]))
        assert facts["people"] == str(row["people_count"])
        assert facts["size"] == f"{row['width']} × {row['height']}"
        link = article.find_element(By.LINK_TEXT, "workflow").get_attribute("href")
        assert link == f"http://127.0.0.1:{system.ports['temporal_ui']}/namespaces/default/workflows/{photo_id}/{row['run_id']}/history"
    camera = driver.find_element(By.CSS_SELECTOR, f"article[data-photo-id='{ids[1]}']")
    facts = dict(zip([e.text for e in camera.find_elements(By.TAG_NAME, "dt")], [e.text for e in camera.find_elements(By.TAG_NAME, "dd")]))
    assert facts["where"] == "37°46′29.7″ N, 122°25′9.9″ W" and facts["taken"] == "2024-05-17T14:03:22"
    assert facts["camera"] == f"Canon EOS {XSS}", "EXIF strings are shown as text"
    assert not driver.find_elements(By.CSS_SELECTOR, "img[src='x']"), "markup got injected"
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "album-page.png"))
    if os.environ.get("CLOUDPOSE_UPDATE_DOCS"):
        driver.save_screenshot(str(DOCS_SHOT))
    entries = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    network = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    urls = entries + [m["params"]["request"]["url"] for m in network if m["method"] == "Network.requestWillBeSent"]
    assert all(urlsplit(u).scheme in ("data", "blob") or urlsplit(u).hostname == "127.0.0.1" for u in urls), urls
    bad = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
    assert not bad, bad


# ---- durability ---------------------------------------------------------------------------------------


def activity_attempts(system: LocalSystem, ids: list[str]) -> dict[str, int]:
    """Per activity type, the highest attempt any of these workflows started (from their histories)."""

    async def run(client):
        best: dict[str, int] = {}
        for photo_id in ids:
            scheduled = {}
            async for event in client.get_workflow_handle(photo_id).fetch_history_events():
                attrs = event.activity_task_scheduled_event_attributes
                if attrs.activity_type.name:
                    scheduled[event.event_id] = attrs.activity_type.name
                started = event.activity_task_started_event_attributes
                if started.scheduled_event_id in scheduled:
                    name = scheduled[started.scheduled_event_id]
                    best[name] = max(best.get(name, 0), started.attempt)
        return best

    return temporal(system, run)


def pending_attempts(system: LocalSystem, ids: list[str], activity: str) -> int:
    """The highest attempt of `activity` now pending in any of these workflows (0 if none)."""

    async def run(client):
        best = 0
        for photo_id in ids:
            described = await client.get_workflow_handle(photo_id).describe()
            for pending in described.raw_description.pending_activities:
                if pending.activity_type.name == activity:
                    best = max(best, pending.attempt)
        return best

    return temporal(system, run)


def test_worker_killed_while_workflows_run_and_started_again_they_complete(system, api, db):
    album = new_album(api, "worker killed")
    files = [(p.name, p.read_bytes(), "image/jpeg") for p in photos(8, start=10)]
    worker = system.procs["worker"]
    ids = [p["id"] for p in upload(api, album, files)]

    def some_activity_running() -> bool:
        async def run(client):
            for photo_id in ids:
                described = await client.get_workflow_handle(photo_id).describe()
                if any(p.state == 2 for p in described.raw_description.pending_activities):  # PENDING_ACTIVITY_STATE_STARTED
                    return True
            return False

        return temporal(system, run)

    wait_for(some_activity_running, 60, "an activity running")
    pid = worker.pid()
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), 10, "the killed worker gone")
    assert not all(r["status"] in FINAL for r in rows(db, ids).values()), "the photos finished before the kill"
    system.start("worker")
    final = wait_final(db, ids, timeout=180)
    assert all(r["status"] == "SUCCEEDED" for r in final.values()), {i: r["error"] for i, r in final.items()}
    assert max(activity_attempts(system, ids).values()) >= 2, "no step was interrupted by the kill"


def test_detect_json_stopped_and_back_within_the_retry_window(system, api, db):
    """detect-json alone (as its function image runs it), stopped while photos are processing, started again."""
    port = free_port()
    detect = Managed("detect-json-only", system.run_dir, system.log_dir)
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "PYTHONPATH": str(ROOT)}

    def start_detect() -> None:
        detect.start([sys.executable, "-m", "cloudpose.serve", "detect-json"], env, ROOT)
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/_/ready", timeout=2).status_code == 200, 120,
                 "detect-json alone", proc_alive=lambda: detect.pid() is not None)  # fmt: skip

    start_detect()
    rerouted = LocalSystem(system.home, extra_env={"ALBUM_FUNCTION_URLS": f"detect-json=http://127.0.0.1:{port}"})
    rerouted.stop("worker")
    rerouted.start("worker")
    try:
        album = new_album(api, "detect outage")
        files = [(p.name, p.read_bytes(), "image/jpeg") for p in photos(6, start=20)]
        detect.stop()
        stopped = time.monotonic()
        ids = [p["id"] for p in upload(api, album, files)]
        wait_for(lambda: pending_attempts(system, ids, "detect-labels") >= 2, 60, "a retried labels step")
        start_detect()
        down_for = time.monotonic() - stopped
        final = wait_final(db, ids, timeout=180)
        assert all(r["status"] == "SUCCEEDED" for r in final.values()), {i: r["error"] for i, r in final.items()}
        for path, photo_id in zip(photos(6, start=20), ids):
            assert final[photo_id]["labels"] == expected_labels(system, path.read_bytes())
        assert activity_attempts(system, ids)["detect-labels"] >= 2
        print(f"detect-json was down {down_for:.1f} s")
    finally:
        detect.stop()
        rerouted.stop("worker")
        system.start("worker")


def test_a_burst_of_100_photos_all_reach_a_final_status_once(system, api, db):
    album = new_album(api, "burst")
    sources = photos(100)
    batches = [sources[i : i + 25] for i in range(0, 100, 25)]

    def send(batch: list[Path]) -> list[dict]:
        with httpx.Client(base_url=system.url, timeout=120) as client:
            return upload(client, album, [(p.name, p.read_bytes(), "image/jpeg") for p in batch])

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = [p for batch in pool.map(send, batches) for p in batch]
    ids = [p["id"] for p in answers]
    assert len(set(ids)) == 100 and all(p["status"] == "RUNNING" for p in answers)
    final = wait_final(db, ids, timeout=400)
    elapsed = time.monotonic() - started
    assert all(r["status"] == "SUCCEEDED" for r in final.values()), {i: r["error"] for i, r in final.items() if r["error"]}
    count = db.execute("SELECT count(*) AS n, count(DISTINCT id) AS d FROM photos WHERE album_id = %s", (album,)).fetchone()
    assert count == {"n": 100, "d": 100}, "none lost, none duplicated"

    async def runs(client):  # describe is strongly consistent (listing goes through the lagging visibility store)
        for _ in range(100):  # a row is SUCCEEDED a moment before its workflow completes: bounded wait
            found = {i: (d.status.name, d.run_id) for i in ids for d in [await client.get_workflow_handle(i).describe()]}
            if all(status == "COMPLETED" for status, _ in found.values()):
                break
            await asyncio.sleep(0.2)
        return found

    described = temporal(system, runs)
    assert described == {i: ("COMPLETED", final[i]["run_id"]) for i in ids}, "each photo's one workflow run completed"
    print(f"100 photos in {elapsed:.1f} s: {100 / elapsed * 60:.0f} photos/min")


def test_down_stops_everything_keeps_the_data_and_up_brings_it_back(system, api):
    albums_before = api.get("/api/albums").json()["albums"]
    pids = [info["pid"] for info in system.status().values() if info["pid"] and not info["external"]]
    down = cli(system.home, "down", timeout=200)
    assert down.returncode == 0 and "Data kept" in down.stdout
    assert not any(alive(pid) for pid in pids), "a process outlived down"
    assert not any(info["running"] for part, info in system.status().items() if part != "functions" or not info["external"])
    assert (system.cluster.data / "PG_VERSION").exists() and (system.home / "temporal" / "temporal.db").exists()
    up = cli(system.home, "up")
    assert up.returncode == 0, up.stderr + logs(system.home)
    assert api.get("/api/albums").json()["albums"] == albums_before
