// CloudPose try-it page: one module, no dependencies.
// Safety: everything that comes from a request or a response reaches the DOM through
// textContent, element properties (img.src) or attributes we set ourselves — never innerHTML.

const $ = (id) => document.getElementById(id);
const FUNCTIONS = { json: "/function/pose-json", annotate: "/function/pose-annotate" };
const state = { blob: null, name: "photo.jpg", limits: null, stream: null, objectUrl: null, run: 0 };

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

// Pretty JSON, but each innermost number array ([x, y, p]) on one line so keypoints stay readable.
function formatJson(doc) {
  return JSON.stringify(doc, null, 2).replace(/\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]/g,
    (_, inner) => `[${inner.split(/,\s+/).join(", ")}]`);
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

async function loadLimits() {
  const base = baseUrl();
  // A gateway answers /_/ready only under the function's own prefix, so try that second.
  for (const path of ["/_/ready", `${FUNCTIONS.json}/_/ready`]) {
    try {
      const r = await fetch(base + path);
      const doc = await r.json();
      if (doc && doc.limits) {
        state.limits = doc.limits;
        $("limits").textContent = `Limits: request body ≤ ${bytes(doc.limits.max_body_bytes)} ` +
          `(the image is sent as base64, about 4/3 of its size), image ≤ ` +
          `${(doc.limits.max_pixels / 1e6).toFixed(0)} megapixels.` +
          (doc.status === "ready" ? "" : ` Model: ${doc.status}.`);
        return;
      }
    } catch { /* try the next path */ }
  }
  state.limits = null;
  $("limits").textContent = `Limits: could not read ${base}/_/ready; the server will still enforce them.`;
}

// ---- one run ---------------------------------------------------------------------------------

function reset() {
  $("errors").replaceChildren();
  $("summary").hidden = true;
  $("annotated").hidden = true;
  $("annotated").removeAttribute("src");
  $("annotate-error").hidden = true;
  $("json").textContent = "";
  $("people").replaceChildren();
}

async function run() {
  if (!state.blob) return;
  const token = ++state.run; // a newer run wins: late answers of an older one are dropped
  reset();
  const id = $("rid").value.trim() || uuid();
  const base = baseUrl();
  $("curl").textContent = curlCommand(base + FUNCTIONS.json, id, state.name);
  const image = await readBase64(state.blob);
  const body = JSON.stringify({ id, image });
  if (state.limits && body.length > state.limits.max_body_bytes) {
    showError(`This request would be ${bytes(body.length)}; the server accepts at most ` +
      `${bytes(state.limits.max_body_bytes)} (POSE_MAX_BODY_MB). Try a smaller image.`);
    setStatus("Not sent.");
    return;
  }
  setStatus(`Sending ${bytes(body.length)} to ${base} …`, true);
  $("send").disabled = true;
  const [json, annotated] = await Promise.all([call(FUNCTIONS.json, body), call(FUNCTIONS.annotate, body)]);
  if (token !== state.run) return;
  $("send").disabled = false;
  showJson(json);
  showAnnotated(annotated);
  const failed = [json, annotated].filter((r) => !r.ok).length;
  setStatus(failed ? `Done, ${failed} of 2 requests failed.` : "Done.");
}

function showJson(r) {
  if (!r.ok) {
    showError(`pose-json: ${r.message}`);
    if (r.doc) $("json").textContent = formatJson(r.doc);
    return;
  }
  const doc = r.doc;
  $("json").textContent = formatJson(doc);
  $("result-id").textContent = doc.id;
  $("count").textContent = String(doc.count);
  for (const [i, box] of (doc.boxes || []).entries()) {
    const li = document.createElement("li");
    li.textContent = `person ${i + 1}: ${Number(box.probability).toFixed(2)}`;
    $("people").append(li);
  }
  if (!doc.count) $("people").append(Object.assign(document.createElement("li"), { textContent: "nobody found" }));
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

function showAnnotated(r) {
  if (!r.ok) {
    $("annotate-error").textContent = `pose-annotate: ${r.message}`;
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
loadLimits();
