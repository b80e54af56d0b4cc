// CloudPose try-it page: one module, no dependencies.
// Safety: everything that comes from a request or a response reaches the DOM through
// textContent, element properties (img.src) or attributes we set ourselves — never innerHTML.

const $ = (id) => document.getElementById(id);

// The page's tasks: the same panels, two functions each (one answers JSON, one draws the result).
const TASKS = {
  poses: {
    json: "pose-json", annotate: "pose-annotate", noun: "people", itemsLabel: "confidence", none: "nobody found",
    alt: "the image with the people drawn", count: (doc) => doc.count, items: poseItems,
  },
  objects: {
    json: "detect-json", annotate: "detect-annotate", noun: "objects", itemsLabel: "accuracy", none: "nothing found",
    alt: "the image with the objects drawn", count: (doc) => (doc.objects || []).length, items: objectItems,
  },
};
const TASK_NAMES = Object.keys(TASKS);
const state = {
  blob: null, name: "photo.jpg", limits: null, stream: null, objectUrl: null, run: 0,
  task: "poses", wanted: "poses", available: TASK_NAMES, served: {}, // served: function name → its /_/ready entry
};

const task = () => TASKS[state.task];
const functionPath = (name) => `/function/${name}`;

// "person 1: 0.93" per person, in the API's order (most probable first).
function poseItems(doc) {
  return (doc.boxes || []).map((box, i) => `person ${i + 1}: ${Number(box.probability).toFixed(2)}`);
}

// "label: accuracy" per object, highest accuracy first.
function objectItems(doc) {
  const objects = [...(doc.objects || [])].sort((a, b) => Number(b.accuracy) - Number(a.accuracy));
  return objects.map((o) => `${o.label}: ${Number(o.accuracy).toFixed(2)}`);
}

// ---- helpers ---------------------------------------------------------------------------------

function baseUrl() {
  const raw = $("base").value.trim().replace(/\/+$/, "");
  return raw || location.origin;
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID(); // only in secure contexts (https, localhost)
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const ms = (v) => `${Number(v).toFixed(1)} ms`;

function bytes(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(0)} KiB` : `${n} B`;
}

function setStatus(text, busy = false) {
  $("status").textContent = text;
  $("status").classList.toggle("busy", busy);
}

function showError(text) {
  const p = document.createElement("p");
  p.className = "error";
  p.textContent = text;
  $("errors").append(p);
}

function readBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// Pretty JSON, but each innermost number array ([x, y, p]) and each flat object of numbers (a
// rectangle) on one line, so keypoints and boxes stay readable.
function formatJson(doc) {
  const oneLine = (inner) => inner.split(/,\s+/).join(", ");
  return JSON.stringify(doc, null, 2)
    .replace(/\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]/g, (_, inner) => `[${oneLine(inner)}]`)
    .replace(/\{\s+("\w+": -?[\d.e+-]+(?:,\s+"\w+": -?[\d.e+-]+)*)\s+\}/g, (_, inner) => `{${oneLine(inner)}}`);
}

// The curl command of cloudpose.local.curl_example: the base64 goes through stdin (no argv limit).
function shellQuote(s) {
  return /^[\w.\/:,+=@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function curlCommand(url, id, file) {
  const printfSafe = JSON.stringify(id).slice(1, -1).replace(/\\/g, "\\\\").replace(/%/g, "%%");
  const head = `{"id": "${printfSafe}", "image": "`.replace(/'/g, `'\\''`);
  return `(printf '${head}'; base64 -w0 ${shellQuote(file)}; printf '"}') |\n` +
    `  curl -s -X POST ${shellQuote(url)} -H 'Content-Type: application/json' --data-binary @-`;
}

// ---- the API ---------------------------------------------------------------------------------

// POST one function; always resolves to {ok, status, doc?, message, ms, headers}.
async function call(path, body) {
  const url = baseUrl() + path;
  const started = performance.now();
  let response, text;
  try {
    response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    text = await response.text();
  } catch (err) {
    return { ok: false, status: 0, ms: performance.now() - started,
      message: `could not reach ${url} (${err.message}). Check the API base URL; a different origin ` +
        `must be allowed by the function's POSE_CORS_ORIGINS.` };
  }
  const elapsed = performance.now() - started;
  let doc = null;
  try { doc = JSON.parse(text); } catch { /* a proxy's HTML or text error page */ }
  if (response.ok && doc) return { ok: true, status: response.status, doc, ms: elapsed, headers: response.headers };
  const message = doc && doc.error ? `${doc.error.code}: ${doc.error.message}` : text.slice(0, 300) || response.statusText;
  return { ok: false, status: response.status, doc, ms: elapsed, message: `HTTP ${response.status} ${message}` };
}

async function getJson(url) {
  try {
    const r = await fetch(url);
    return await r.json();
  } catch {
    return null; // unreachable, refused by CORS, or not JSON
  }
}

// The server's /_/ready: {doc, functions}. A gateway answers /_/ready only under each function's own
// prefix, so then ask every function the page knows, and take the union of what they list.
async function readReady(base) {
  const direct = await getJson(`${base}/_/ready`);
  if (direct && direct.limits) return { doc: direct, functions: direct.functions };
  const names = TASK_NAMES.flatMap((t) => [TASKS[t].json, TASKS[t].annotate]);
  const docs = await Promise.all(names.map((name) => getJson(`${base}${functionPath(name)}/_/ready`)));
  const found = docs.filter((doc) => doc && doc.limits);
  if (!found.length) return null;
  const lists = found.map((doc) => doc.functions).filter(Boolean);
  return { doc: found[0], functions: lists.length ? Object.assign({}, ...lists) : undefined };
}

async function loadLimits() {
  const base = baseUrl();
  const ready = await readReady(base);
  if (base !== baseUrl()) return; // the field changed meanwhile: that change's own load wins
  showLimits(ready && ready.doc, base);
  offerTasks(ready ? ready.functions : undefined);
}

function showLimits(doc, base) {
  if (!doc) {
    state.limits = null;
    $("limits").textContent = `Limits: could not read ${base}/_/ready; the server will still enforce them.`;
    return;
  }
  state.limits = doc.limits;
  $("limits").textContent = `Limits: request body ≤ ${bytes(doc.limits.max_body_bytes)} ` +
    `(the image is sent as base64, about 4/3 of its size), image ≤ ` +
    `${(doc.limits.max_pixels / 1e6).toFixed(0)} megapixels.` +
    (doc.status === "ready" ? "" : ` Model: ${doc.status}.`);
}

// ---- the task switch -------------------------------------------------------------------------

const tabs = () => [...document.querySelectorAll("#tasks [role=tab]")];

function taskFromUrl() {
  const name = location.hash.slice(1) || new URLSearchParams(location.search).get("task");
  return TASK_NAMES.includes(name) ? name : null;
}

// Offer the tasks with at least one function the server lists: a one-function image gets its task
// and no switch. Nothing listed (an older server, or /_/ready unreadable): offer every task.
function offerTasks(functions) {
  state.served = functions || {};
  const listed = Object.keys(state.served);
  const offered = TASK_NAMES.filter((t) => listed.includes(TASKS[t].json) || listed.includes(TASKS[t].annotate));
  state.available = offered.length ? offered : TASK_NAMES;
  for (const tab of tabs()) tab.hidden = !state.available.includes(tab.dataset.task);
  $("tasks").hidden = state.available.length < 2;
  selectTask(state.available.includes(state.wanted) ? state.wanted : state.available[0]);
}

// The user's choice (a tab, or the URL): remembered in the URL, so a link opens this task.
function chooseTask(name) {
  state.wanted = name;
  const url = new URL(location.href);
  url.searchParams.delete("task");
  url.hash = name;
  history.replaceState(null, "", url);
  if (state.available.includes(name)) selectTask(name);
}

// Show `name` in the panels; if an image is chosen, send it to this task's functions.
function selectTask(name) {
  const changed = name !== state.task;
  state.task = name;
  for (const tab of tabs()) {
    const on = tab.dataset.task === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  $("work").setAttribute("aria-labelledby", `tab-${name}`);
  for (const el of document.querySelectorAll("[data-for]")) el.hidden = el.dataset.for !== name;
  for (const el of document.querySelectorAll("[data-fn]")) el.textContent = task()[el.dataset.fn];
  $("count-label").textContent = task().noun;
  $("items-label").textContent = task().itemsLabel;
  $("annotated").alt = task().alt;
  showModel();
  if (changed && state.blob) run();
}

function showModel() {
  const listed = Object.keys(state.served);
  const fn = state.served[task().json] || state.served[task().annotate];
  $("model").textContent = fn && fn.model ? ` Model: ${fn.model}.`
    : listed.length && !fn ? ` The server lists only ${listed.join(", ")}.` : "";
}

// Arrows, Home and End move along the tabs and select (Enter and Space click a button anyway).
function onTabKey(e) {
  const shown = tabs().filter((t) => !t.hidden);
  const i = shown.indexOf(e.target);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: shown.length - 1 }[e.key];
  if (i < 0 || next === undefined) return;
  e.preventDefault();
  const tab = shown[(next + shown.length) % shown.length];
  tab.focus();
  chooseTask(tab.dataset.task);
}

// ---- one run ---------------------------------------------------------------------------------

function reset() {
  $("errors").replaceChildren();
  $("summary").hidden = true;
  $("annotated").hidden = true;
  $("annotated").removeAttribute("src");
  $("annotate-error").hidden = true;
  $("json").textContent = "";
  $("items").replaceChildren();
}

async function run() {
  if (!state.blob) return;
  const token = ++state.run; // a newer run wins: late answers of an older one are dropped
  const t = task();
  reset();
  setStatus(`Reading ${state.name} …`, true);
  const id = $("rid").value.trim() || uuid();
  const base = baseUrl();
  $("curl").textContent = curlCommand(base + functionPath(t.json), id, state.name);
  const image = await readBase64(state.blob);
  if (token !== state.run) return;
  const body = JSON.stringify({ id, image });
  if (state.limits && body.length > state.limits.max_body_bytes) {
    showError(`This request would be ${bytes(body.length)}; the server accepts at most ` +
      `${bytes(state.limits.max_body_bytes)} (POSE_MAX_BODY_MB). Try a smaller image.`);
    setStatus("Not sent.");
    return;
  }
  setStatus(`Sending ${bytes(body.length)} to ${base} …`, true);
  $("send").disabled = true;
  const [json, annotated] = await Promise.all([call(functionPath(t.json), body), call(functionPath(t.annotate), body)]);
  if (token !== state.run) return;
  $("send").disabled = false;
  showJson(json, t);
  showAnnotated(annotated, t);
  const failed = [json, annotated].filter((r) => !r.ok).length;
  setStatus(failed ? `Done, ${failed} of 2 requests failed.` : "Done.");
}

function showJson(r, t) {
  if (!r.ok) {
    showError(`${t.json}: ${r.message}`);
    if (r.doc) $("json").textContent = formatJson(r.doc);
    return;
  }
  const doc = r.doc;
  $("json").textContent = formatJson(doc);
  $("result-id").textContent = doc.id;
  $("count").textContent = String(t.count(doc));
  const items = t.items(doc);
  for (const text of items.length ? items : [t.none]) {
    $("items").append(Object.assign(document.createElement("li"), { textContent: text }));
  }
  $("t-preprocess").textContent = ms(doc.speed_preprocess);
  $("t-inference").textContent = ms(doc.speed_inference);
  $("t-postprocess").textContent = ms(doc.speed_postprocess);
  $("t-roundtrip").textContent = ms(r.ms);
  const total = /(?:^|,)\s*total;dur=([\d.]+)/.exec(r.headers.get("Server-Timing") || "");
  const host = r.headers.get("X-Served-By");
  $("served").textContent = [
    total ? `server total ${ms(total[1])}, so ${ms(r.ms - total[1])} on the network and in the browser` : "",
    host ? `served by ${host}` : "",
  ].filter(Boolean).join("; ");
  $("summary").hidden = false;
}

function showAnnotated(r, t) {
  if (!r.ok) {
    $("annotate-error").textContent = `${t.annotate}: ${r.message}`;
    $("annotate-error").hidden = false; // shown in its own panel, not twice
    return;
  }
  $("annotated").src = `data:image/jpeg;base64,${r.doc.image}`;
  $("annotated").hidden = false;
}

function choose(blob, name) {
  state.blob = blob;
  state.name = name || "photo.jpg";
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(blob);
  $("original").src = state.objectUrl;
  $("original").hidden = false;
  $("send").disabled = false;
  run();
}

// ---- inputs ----------------------------------------------------------------------------------

function firstFile(list) {
  return [...(list || [])].find((f) => f.kind === undefined || f.kind === "file");
}

function wire() {
  $("file").addEventListener("change", () => {
    const f = $("file").files[0];
    if (f) choose(f, f.name);
    $("file").value = ""; // choosing the same file again still fires change
  });
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = firstFile(e.dataTransfer.files);
    if (f) choose(f, f.name);
  });
  window.addEventListener("dragover", (e) => e.preventDefault()); // a missed drop must not navigate away
  window.addEventListener("drop", (e) => e.preventDefault());
  document.addEventListener("paste", (e) => {
    const item = [...e.clipboardData.items].find((i) => i.kind === "file");
    if (!item) return;
    e.preventDefault();
    const f = item.getAsFile();
    choose(f, f.name && f.name !== "image.png" ? f.name : `pasted.${(f.type.split("/")[1] || "png")}`);
  });
  $("samples").addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-sample]");
    if (!button) return;
    const name = button.dataset.sample;
    const r = await fetch(`static/samples/${encodeURIComponent(name)}`);
    if (r.ok) choose(await r.blob(), name);
    else showError(`could not load the sample ${name}: HTTP ${r.status}`);
  });
  for (const tab of tabs()) tab.addEventListener("click", () => chooseTask(tab.dataset.task));
  $("tasks").addEventListener("keydown", onTabKey);
  window.addEventListener("hashchange", () => { const name = taskFromUrl(); if (name) chooseTask(name); });
  $("request").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  $("base").addEventListener("change", loadLimits);
  $("original").addEventListener("error", () => { $("original").hidden = true; }); // e.g. a text file
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", () => copy(button));
  }
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    $("camera").hidden = false;
    $("camera").addEventListener("click", startCamera);
    $("snap").addEventListener("click", snap);
  }
}

async function copy(button) {
  const pre = $(button.dataset.copy);
  try {
    await navigator.clipboard.writeText(pre.textContent); // needs a secure context
  } catch {
    getSelection().selectAllChildren(pre); // plain http on a cluster: select it, try the old way
    document.execCommand("copy");
  }
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

async function startCamera() {
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: true });
  } catch (err) {
    showError(`camera: ${err.message}`);
    return;
  }
  $("video").srcObject = state.stream;
  $("video").hidden = false;
  $("snap").hidden = false;
  $("camera").hidden = true;
}

function snap() {
  const video = $("video");
  if (!video.videoWidth) return; // no frame yet
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  for (const track of state.stream.getTracks()) track.stop();
  video.hidden = true;
  $("snap").hidden = true;
  $("camera").hidden = false;
  canvas.toBlob((blob) => choose(blob, "camera.jpg"), "image/jpeg", 0.9);
}

wire();
state.wanted = taskFromUrl() || state.task;
selectTask(state.wanted); // the URL's task at once; loadLimits then offers only the served ones
loadLimits();
