"""The try-it page (GET /) in a real headless Chromium driven by Selenium, against real server processes.

Covers, for both tasks of the switch (Poses: pose-json + pose-annotate; Objects: detect-json +
detect-annotate): upload → annotated image, count, items and timings equal to the API's; the
server's error message for a non-image; an XSS id shown as text. And: the switch by mouse and
keyboard, the task kept in and opened from the URL; a cross-origin, single-function API (CORS, the
clear 404 of the other function, no switch); a single-function image's own page (just its task);
no request leaving the host; no CSP violation. Plus plain-HTTP checks of the CSP header.
Screenshots go to artifacts/; CLOUDPOSE_UPDATE_DOCS=1 also rewrites docs/page.png and
docs/page-objects.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from cloudpose.service import static_dir

from .conftest import LOAD_128, ROOT, Server, b64, chromium, load_images

ARTIFACTS = ROOT / "artifacts"
DOCS_SHOT = ROOT / "docs" / "page.png"
DOCS_SHOT_OBJECTS = ROOT / "docs" / "page-objects.png"
# The page's tasks: the tab's id suffix → its two functions.
TASKS = {"poses": ("pose-json", "pose-annotate"), "objects": ("detect-json", "detect-annotate")}
XSS = "<img src=x onerror=alert(1)>"
QUOTES = "it's 100% \"quoted\" \\ ok"  # everything the curl command must quote for bash, printf and JSON
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def post_json(url: str, payload: dict) -> httpx.Response:
    return httpx.post(url, content=json.dumps(payload), headers={"Content-Type": "application/json"}, timeout=60)


# ---- plain HTTP: the page's headers -------------------------------------------------------------


def csp_directives(header: str) -> dict[str, list[str]]:
    parts = (d.split() for d in header.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


def test_page_is_served_with_a_strict_csp(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = csp_directives(r.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert not any("unsafe" in v for values in csp.values() for v in values)
    html = r.text
    # What the CSP would block anyway must not be there: inline scripts, handlers, style attributes.
    assert all('src="' in tag for tag in re.findall(r"<script\b[^>]*>", html))
    assert not re.search(r"\son\w+\s*=", html) and not re.search(r"\sstyle\s*=", html) and "<style" not in html
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html), "the page must not load anything from elsewhere"
    for path in ("static/app.js", "static/style.css", "static/favicon.svg", "static/samples/astronaut.jpg"):
        assert path in html
        f = client.get(f"/{path}")
        assert f.status_code == 200, path
        assert f.headers["content-security-policy"] == r.headers["content-security-policy"]
        assert f.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")  # a module needs it


def test_static_files_hold_no_secrets_or_host_paths():
    home = str(Path.home())
    for path in static_dir().rglob("*"):
        if path.suffix in {".html", ".js", ".css", ".svg", ".md"}:
            text = path.read_text()
            assert str(ROOT) not in text and home not in text and "/work/" not in text, path
            assert not re.search(r"(?i)(api[_-]?key|secret|password|authorization|bearer)\s*[:=]", text), path
    samples = list((static_dir() / "samples").glob("*.jpg"))
    assert len(samples) >= 3 and all(p.stat().st_size < 150_000 for p in samples)
    assert (static_dir() / "samples" / "README.md").is_file()  # sources and licences


# ---- a second server: one function, another origin, CORS for the page's origin ------------------


@pytest.fixture(scope="module")
def json_only(server):
    """pose-json alone (as its function image runs it), allowing the page's origin only; a 256 KiB body limit."""
    env = {"POSE_CORS_ORIGINS": server.url, "POSE_MAX_BODY_MB": "0.25"}
    srv = Server(["-m", "cloudpose.serve", "pose-json"], env=env)
    yield srv
    srv.stop()


def test_cors_preflight_for_a_json_post(server, json_only):
    url = f"{json_only.url}/function/pose-json"
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = httpx.options(url, headers={"Origin": server.url, **asked})
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == server.url
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "content-type" in ok.headers["access-control-allow-headers"].lower()
    refused = httpx.options(url, headers={"Origin": "http://elsewhere.example", **asked})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    # The answers (errors included) carry the header too, and expose the timing headers.
    err = httpx.post(url, content=b"{}", headers={"Origin": server.url, "Content-Type": "application/json"})
    assert err.status_code == 400 and err.headers["access-control-allow-origin"] == server.url
    assert "server-timing" in err.headers["access-control-expose-headers"].lower()


# ---- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver() -> Iterator:
    # A synthetic webcam, granted without a prompt, for the getUserMedia snapshot.
    with chromium(1200, 800, ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")) as drv:
        yield drv


def by_id(drv, element_id: str):
    from selenium.webdriver.common.by import By

    return drv.find_element(By.ID, element_id)


def wait(drv, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout, poll_frequency=0.05).until(condition)


def open_page(drv, url: str, tail: str = "") -> None:
    """Open the page (`tail`: "#objects", "?task=objects") and wait until it has read /_/ready."""
    drv.get_log("browser"), drv.get_log("performance")  # start each test with empty logs
    drv.get(f"{url}/{tail}")
    wait(drv, lambda d: by_id(d, "limits").text.startswith("Limits: request body"))


def task_shown(drv) -> str:
    """The task the panels show, checked against every label that names its functions."""
    from selenium.webdriver.common.by import By

    selected = [t for t in TASKS if by_id(drv, f"tab-{t}").get_attribute("aria-selected") == "true"]
    assert len(selected) == 1, selected
    json_fn, annotate_fn = TASKS[selected[0]]
    assert by_id(drv, "work").get_attribute("aria-labelledby") == f"tab-{selected[0]}"
    named = [e.get_attribute("textContent") for e in drv.find_elements(By.CSS_SELECTOR, "[data-fn]")]
    assert named and set(named) == {json_fn, annotate_fn}, named
    return selected[0]


def switch_visible(drv) -> bool:
    return by_id(drv, "tasks").is_displayed()


def wait_answer(drv, key: str) -> str:
    """Wait for the run of the current task to finish: its status, and an answer with `key` (boxes, objects)."""
    status = wait_done(drv)
    wait(drv, lambda d: key in json.loads(by_id(d, "json").text or "{}"))
    return status


def items_shown(drv) -> list[str]:
    return [li.text for li in by_id(drv, "items").find_elements("tag name", "li")]


def object_items(doc: dict) -> list[str]:
    """detect-json's objects as the page lists them: label and accuracy, highest accuracy first."""
    return [f"{o['label']}: {o['accuracy']:.2f}" for o in sorted(doc["objects"], key=lambda o: -o["accuracy"])]


def set_field(drv, element_id: str, value: str) -> None:
    from selenium.webdriver.common.keys import Keys

    field = by_id(drv, element_id)
    field.clear()
    field.send_keys(value + Keys.TAB)  # TAB commits it (fires change)


def wait_done(drv) -> str:
    return wait(drv, lambda d: (s := by_id(d, "status").text).startswith(("Done", "Not sent")) and s)


def click_sample(drv, name: str) -> None:
    from selenium.webdriver.common.by import By

    drv.find_element(By.CSS_SELECTOR, f"button[data-sample='{name}']").click()


def wait_annotated(drv) -> None:
    wait(drv, lambda d: d.execute_script("const i = document.getElementById('annotated');"
                                         "return !i.hidden && i.complete && i.naturalWidth > 0"))  # fmt: skip


def check_clean(drv) -> None:
    """Every request the page made stayed on this machine, and nothing broke the CSP or threw."""
    entries = drv.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(e => e.name)"
    )
    network = [json.loads(e["message"])["message"] for e in drv.get_log("performance")]
    urls = entries + [m["params"]["request"]["url"] for m in network if m["method"] == "Network.requestWillBeSent"]
    assert any(u.endswith("/static/app.js") for u in urls), urls
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme in {"data", "blob"} or parts.hostname in LOCAL_HOSTS, f"request left the host: {url}"
    logs = drv.get_log("browser")
    bad = [e["message"] for e in logs if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
    assert not bad, bad


def screenshot(drv, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"page-{name}.png"
    drv.save_screenshot(str(path))
    return path


def numbers_shown(drv) -> dict[str, float]:
    shown = {}
    for stage in ("preprocess", "inference", "postprocess", "roundtrip"):
        text = by_id(drv, f"t-{stage}").text
        assert re.fullmatch(r"\d+\.\d ms", text), f"{stage}: {text!r}"
        shown[stage] = float(text.split()[0])
    return shown


def run_curl(command: str, cwd: Path) -> dict:
    if not (shutil.which("curl") and shutil.which("base64")):
        pytest.skip("curl and base64 are needed to run the page's curl command")
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def people_photo(server) -> tuple[Path, dict]:
    """A load-128 photo with at least two people, and pose-json's answer for it."""
    for path in load_images()[:24]:
        doc = post_json(f"{server.url}/function/pose-json", {"id": "ref", "image": b64(path)}).json()
        if doc["count"] >= 2:
            return path, doc
    pytest.fail("no photo with two people among the first 24 of load-128")


@pytest.fixture(scope="module")
def objects_photo(server) -> tuple[Path, dict]:
    """A load-128 photo in which detect-json finds a person and at least one other object, and its answer."""
    for path in load_images()[:24]:
        doc = post_json(f"{server.url}/function/detect-json", {"id": "ref", "image": b64(path)}).json()
        if "person" in {o["label"] for o in doc["objects"]} and len(doc["objects"]) >= 2:
            return path, doc
    pytest.fail("no photo with a person and another object among the first 24 of load-128")


@pytest.mark.browser
def test_upload_a_photo(driver, server, people_photo):
    path, expected = people_photo
    open_page(driver, server.url)
    by_id(driver, "file").send_keys(str(path))
    wait_annotated(driver)
    assert wait_done(driver) == "Done."
    assert int(by_id(driver, "count").text) == expected["count"]
    assert task_shown(driver) == "poses" and switch_visible(driver)  # the local default serves both tasks
    people = items_shown(driver)
    assert people == [f"person {i + 1}: {b['probability']:.2f}" for i, b in enumerate(expected["boxes"])]
    shown = numbers_shown(driver)
    assert shown["inference"] > 0 and shown["roundtrip"] >= shown["inference"]
    doc = json.loads(by_id(driver, "json").text)  # the answer as shown is the API's answer
    same = ("count", "boxes", "keypoints")
    assert {k: doc[k] for k in same} == {k: expected[k] for k in same}
    assert by_id(driver, "result-id").text == doc["id"] and re.fullmatch(r"[0-9a-f-]{36}", doc["id"])
    # The curl command shown, run as is next to the photo, gives the same answer.
    curl = by_id(driver, "curl").text
    assert f"{server.url}/function/pose-json" in curl and path.name in curl
    assert run_curl(curl, LOAD_128)["count"] == expected["count"]
    screenshot(driver, "people")
    check_clean(driver)


@pytest.mark.browser
@pytest.mark.parametrize("task", list(TASKS))
def test_a_text_file_shows_the_servers_message(driver, server, tmp_path, task):
    json_fn, annotate_fn = TASKS[task]
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not a photo\n" * 20)
    api = post_json(f"{server.url}/function/{json_fn}", {"id": "t", "image": b64(text_file)})
    assert api.status_code == 400
    message = api.json()["error"]["message"]
    open_page(driver, server.url, f"#{task}")
    assert task_shown(driver) == task
    by_id(driver, "file").send_keys(str(text_file))
    assert wait_done(driver) == "Done, 2 of 2 requests failed."
    errors = by_id(driver, "errors").text
    assert f"{json_fn}: HTTP 400 not_an_image: {message}" in errors
    assert f"{annotate_fn}: HTTP 400 not_an_image: {message}" in by_id(driver, "annotate-error").text
    assert not by_id(driver, "summary").is_displayed() and not by_id(driver, "annotated").is_displayed()
    screenshot(driver, "error" if task == "poses" else f"error-{task}")
    check_clean(driver)


@pytest.mark.browser
@pytest.mark.parametrize("task", list(TASKS))
def test_an_html_id_is_shown_as_text(driver, server, task):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    json_fn = TASKS[task][0]
    open_page(driver, server.url, f"#{task}")
    assert task_shown(driver) == task
    set_field(driver, "rid", XSS)
    click_sample(driver, "astronaut.jpg")
    wait_annotated(driver)
    wait_done(driver)
    assert by_id(driver, "result-id").text == XSS
    assert json.loads(by_id(driver, "json").text)["id"] == XSS
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 — the property raises when no dialog is open
    assert not driver.find_elements(By.CSS_SELECTOR, "img[src='x'], main img:not([id])"), "markup got injected"
    assert run_curl(by_id(driver, "curl").text, static_dir() / "samples")["id"] == XSS
    check_clean(driver)

    open_page(driver, server.url, f"#{task}")  # quotes, %, backslash: the curl command must survive bash and printf
    set_field(driver, "rid", QUOTES)
    click_sample(driver, "coffee.jpg")
    wait_done(driver)
    api = post_json(f"{server.url}/function/{json_fn}", {"id": "q", "image": b64(static_dir() / "samples" / "coffee.jpg")})
    count = api.json()["count"] if task == "poses" else len(api.json()["objects"])
    assert task != "poses" or count == 0  # nobody in the coffee sample
    assert by_id(driver, "count").text == str(count) and by_id(driver, "result-id").text == QUOTES
    answer = run_curl(by_id(driver, "curl").text, static_dir() / "samples")
    assert answer["id"] == QUOTES and f"/function/{json_fn}" in by_id(driver, "curl").text


@pytest.mark.browser
def test_another_origin_with_one_function(driver, server, json_only):
    """The page on one origin, the API (pose-json only, with CORS) on another: JSON works, annotate is a clear 404."""
    open_page(driver, server.url, "#objects")
    set_field(driver, "base", json_only.url)
    wait(driver, lambda d: "request body ≤ 256 KiB" in by_id(d, "limits").text)  # that server's limits
    # That server lists pose-json only: no switch, just the poses task (also when the URL asks for objects).
    assert not switch_visible(driver) and task_shown(driver) == "poses"
    assert "Model: " in by_id(driver, "model").text
    click_sample(driver, "astronaut.jpg")
    assert wait_done(driver) == "Done, 1 of 2 requests failed."
    assert by_id(driver, "count").text == "1"
    numbers_shown(driver)
    assert "served by" in by_id(driver, "served").text  # X-Served-By is readable: exposed by CORS
    error = by_id(driver, "annotate-error").text
    assert error.startswith("pose-annotate: HTTP 404 not_found: no route POST /function/pose-annotate"), error
    check_clean(driver)

    # Over the body limit it reads from /_/ready: refused before uploading, saying why.
    by_id(driver, "file").send_keys(str(max(load_images(), key=lambda p: p.stat().st_size)))
    wait(driver, lambda d: by_id(d, "status").text == "Not sent.")
    assert "the server accepts at most 256 KiB (POSE_MAX_BODY_MB)" in by_id(driver, "errors").text

    # Another origin that does not allow this page (no POSE_CORS_ORIGINS): an explanation, not a blank page.
    other = server.url.replace("127.0.0.1", "localhost")
    open_page(driver, server.url)
    set_field(driver, "base", other)
    wait(driver, lambda d: "could not read" in by_id(d, "limits").text)
    assert switch_visible(driver)  # what it serves is unknown: both tasks stay on offer
    click_sample(driver, "coffee.jpg")
    wait_done(driver)
    assert f"pose-json: could not reach {other}/function/pose-json" in by_id(driver, "errors").text
    assert "POSE_CORS_ORIGINS" in by_id(driver, "errors").text


@pytest.fixture(scope="module")
def detect_only():
    """detect-json alone, as its function image runs it: its own page, same origin."""
    srv = Server(["-m", "cloudpose.serve", "detect-json"])
    yield srv
    srv.stop()


@pytest.mark.browser
def test_objects_and_back(driver, server, objects_photo):
    """Objects: a photo gives the annotated image and the API's objects; then to Poses and back (mouse, keyboard)."""
    from selenium.webdriver.common.keys import Keys

    path, expected = objects_photo
    open_page(driver, server.url)
    assert task_shown(driver) == "poses" and urlsplit(driver.current_url).fragment == ""
    by_id(driver, "tab-objects").click()
    assert task_shown(driver) == "objects" and urlsplit(driver.current_url).fragment == "objects"
    labels = [by_id(driver, e).get_attribute("textContent") for e in ("count-label", "items-label")]
    assert labels == ["objects", "accuracy"]  # the summary's labels, while it is still hidden
    by_id(driver, "file").send_keys(str(path))
    wait_annotated(driver)
    assert wait_answer(driver, "objects") == "Done."
    assert int(by_id(driver, "count").text) == len(expected["objects"])
    items = items_shown(driver)
    assert items == object_items(expected) and any(item.startswith("person: ") for item in items), items
    shown = numbers_shown(driver)
    assert shown["inference"] > 0 and shown["roundtrip"] >= shown["inference"]
    doc = json.loads(by_id(driver, "json").text)  # the answer as shown is the API's answer
    assert doc["objects"] == expected["objects"]
    assert by_id(driver, "result-id").text == doc["id"] and re.fullmatch(r"[0-9a-f-]{36}", doc["id"])
    assert by_id(driver, "annotated").get_attribute("alt") == "the image with the objects drawn"
    curl = by_id(driver, "curl").text
    assert f"{server.url}/function/detect-json" in curl and path.name in curl
    assert run_curl(curl, LOAD_128)["objects"] == expected["objects"]
    screenshot(driver, "objects")

    # Back to Poses with the keyboard: the same photo now goes to pose-json and pose-annotate.
    poses = post_json(f"{server.url}/function/pose-json", {"id": "p", "image": b64(path)}).json()
    by_id(driver, "tab-objects").send_keys(Keys.ARROW_LEFT)
    assert task_shown(driver) == "poses" and urlsplit(driver.current_url).fragment == "poses"
    assert driver.switch_to.active_element == by_id(driver, "tab-poses")  # the focus moves with the selection
    assert wait_answer(driver, "boxes") == "Done."
    wait_annotated(driver)
    assert int(by_id(driver, "count").text) == poses["count"] and by_id(driver, "count-label").text == "people"
    assert items_shown(driver) == [f"person {i + 1}: {b['probability']:.2f}" for i, b in enumerate(poses["boxes"])]
    assert "/function/pose-json" in by_id(driver, "curl").text

    # And to Objects again (End; the arrows wrap around too): the API's objects once more.
    by_id(driver, "tab-poses").send_keys(Keys.END)
    assert wait_answer(driver, "objects") == "Done."
    assert task_shown(driver) == "objects" and items_shown(driver) == object_items(expected)
    by_id(driver, "tab-objects").send_keys(Keys.ARROW_RIGHT)
    assert task_shown(driver) == "poses"
    by_id(driver, "tab-poses").send_keys(Keys.ARROW_RIGHT)
    assert task_shown(driver) == "objects"
    assert wait_answer(driver, "objects") == "Done." and items_shown(driver) == object_items(expected)
    check_clean(driver)


@pytest.mark.browser
def test_the_url_opens_the_chosen_task(driver, server):
    cases = [("#objects", "objects"), ("?task=objects", "objects"), ("#poses", "poses"), ("", "poses"),
             ("#nonsense", "poses"), ("#toString", "poses")]  # fmt: skip
    for tail, task in cases:
        driver.get("about:blank")  # a fresh load each time, not a jump within the page
        open_page(driver, server.url, tail)
        assert task_shown(driver) == task, tail
        assert by_id(driver, f"tab-{task}").get_attribute("tabindex") == "0", tail
        assert len(driver.find_elements("css selector", "#tasks [role=tab][tabindex='0']")) == 1, tail
    # The choice is in the URL: a reload (or the link) opens the task chosen.
    by_id(driver, "tab-objects").click()
    assert driver.current_url == f"{server.url}/#objects"
    driver.refresh()
    wait(driver, lambda d: by_id(d, "limits").text.startswith("Limits: request body"))
    assert task_shown(driver) == "objects"
    # A link within the page (the hash changes, no reload) switches too, and ?task= gives way to the hash.
    driver.execute_script("location.hash = 'poses'")
    wait(driver, lambda d: task_shown(d) == "poses")
    driver.get("about:blank")
    open_page(driver, server.url, "?task=objects")
    by_id(driver, "tab-poses").click()
    assert driver.current_url == f"{server.url}/#poses"
    check_clean(driver)


@pytest.mark.browser
def test_a_single_function_image_shows_just_its_task(driver, detect_only):
    """detect-json's own image serves the page too: no switch, the objects task even if the URL asks for poses."""
    open_page(driver, detect_only.url, "#poses")
    assert not switch_visible(driver) and task_shown(driver) == "objects"
    assert "Model: " in by_id(driver, "model").text
    sample = static_dir() / "samples" / "coffee.jpg"
    api = post_json(f"{detect_only.url}/function/detect-json", {"id": "s", "image": b64(sample)}).json()
    click_sample(driver, "coffee.jpg")
    assert wait_done(driver) == "Done, 1 of 2 requests failed."
    assert int(by_id(driver, "count").text) == len(api["objects"])
    assert items_shown(driver) == (object_items(api) or ["nothing found"])
    error = by_id(driver, "annotate-error").text
    assert error.startswith("detect-annotate: HTTP 404 not_found: no route POST /function/detect-annotate"), error
    check_clean(driver)


@pytest.mark.browser
def test_webcam_snapshot(driver, server):
    open_page(driver, server.url)
    by_id(driver, "camera").click()
    wait(driver, lambda d: d.execute_script("return document.getElementById('video').videoWidth > 0"))
    by_id(driver, "snap").click()
    wait_annotated(driver)
    assert wait_done(driver) == "Done."
    assert by_id(driver, "count").text.isdigit() and "camera.jpg" in by_id(driver, "curl").text
    check_clean(driver)


def docs_picture(drv, name: str, target: Path) -> None:
    """A 1200×800 screenshot as a palette PNG under ~150 KB; CLOUDPOSE_UPDATE_DOCS=1 copies it to `target`."""
    from PIL import Image

    drv.execute_script("document.activeElement.blur()")  # no focus ring in the picture
    shot = Image.open(screenshot(drv, name)).convert("RGB")
    assert shot.size == (1200, 800)
    small = ARTIFACTS / f"page-docs-{name}.png"
    for colors in (128, 96, 64):  # a palette PNG keeps the picture readable and under ~150 KB
        shot.quantize(colors, method=Image.Quantize.FASTOCTREE).save(small, optimize=True)
        if small.stat().st_size <= 150_000:
            break
    assert small.stat().st_size <= 150_000
    if os.environ.get("CLOUDPOSE_UPDATE_DOCS") == "1":
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(small, target)


@pytest.mark.browser
def test_sample_screenshot_for_the_docs(driver, server):
    """The README's picture: the astronaut sample at 1200×800. CLOUDPOSE_UPDATE_DOCS=1 writes docs/page.png."""
    open_page(driver, server.url)
    click_sample(driver, "astronaut.jpg")
    wait_annotated(driver)
    wait_done(driver)
    assert by_id(driver, "count").text == "1" and task_shown(driver) == "poses"
    docs_picture(driver, "astronaut", DOCS_SHOT)


@pytest.mark.browser
def test_objects_screenshot_for_the_docs(driver, server):
    """The objects task's picture: the coffee sample. CLOUDPOSE_UPDATE_DOCS=1 writes docs/page-objects.png."""
    open_page(driver, server.url, "#objects")
    click_sample(driver, "coffee.jpg")
    wait_annotated(driver)
    wait_answer(driver, "objects")
    assert task_shown(driver) == "objects" and any(i.startswith("cup: ") for i in items_shown(driver))
    docs_picture(driver, "coffee-objects", DOCS_SHOT_OBJECTS)
