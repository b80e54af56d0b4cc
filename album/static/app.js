// CloudPose albums: one plain ES module, no framework, nothing fetched from elsewhere.
// Everything that comes from the API (names, EXIF strings, errors) goes on the page as text, never as HTML.

const $ = (id) => document.getElementById(id);
const PARALLEL_UPLOADS = 3; // files sent at once; each has its own request, so its own progress bar
const POLL_MS = 1000; // while photos are processing
const state = { album: null, limits: null, shown: 0, uploads: new Map(), queue: [], active: 0, timer: null, cards: new Map() };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'class') node.className = value;
    else if (key.startsWith('data-') || key === 'rel' || key === 'target') node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error(`could not reach the album service (${err.message})`);
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) throw new Error(body?.error?.message || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) { $('errors').replaceChildren(el('p', { class: 'error', text: message })); }
function clearError() { $('errors').replaceChildren(); }

function bytes(n) {
  if (n === null || n === undefined) return null;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function dms(c) {
  return c ? `${c.degrees}°${c.minutes}′${c.seconds}″ ${c.direction}` : null;
}

// ---- albums ---------------------------------------------------------------------------------------

async function loadAlbums() {
  const { albums } = await api('api/albums');
  $('albums').replaceChildren(...albums.map((a) => el('li', {},
    el('button', { type: 'button', class: a.id === state.album ? 'current' : '', 'data-album-id': a.id,
      onclick: () => selectAlbum(a.id, a.name) },
    el('span', { text: a.name }), el('span', { class: 'n', text: `${a.photos}` })))));
  return albums;
}

async function createAlbum(event) {
  event.preventDefault();
  const name = $('album-name').value.trim();
  if (!name) return;
  try {
    const album = await api('api/albums', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name }) });
    $('album-name').value = '';
    clearError();
    await selectAlbum(album.id, album.name);
  } catch (err) { showError(`Could not create the album: ${err.message}`); }
}

async function selectAlbum(id, name) {
  if (state.album !== id) {
    state.album = id;
    state.shown = state.limits?.page_size || 60;
    state.cards.clear();
    $('grid').replaceChildren();
    $('uploads').replaceChildren();
    state.uploads.clear();
  }
  history.replaceState(null, '', `#${id}`);
  $('album-title').textContent = name || '';
  $('album').hidden = false;
  $('empty').hidden = true;
  await loadAlbums().catch(() => {});
  await refresh();
}

// ---- uploads: each file in its own request, so each has its own progress and status ----------------

function setUploadState(item, kind, text) {
  item.row.dataset.state = kind;
  item.state.className = `state ${kind}`;
  item.state.textContent = text;
  if (kind !== 'uploading') item.progress.value = 1;
}

function addFiles(files) {
  if (!state.album) return;
  const limit = state.limits?.max_upload_bytes;
  for (const file of files) {
    const item = { file, album: state.album, progress: el('progress', { max: 1, value: 0 }),
      state: el('span', { class: 'state' }) };
    item.row = el('li', { 'data-file': file.name }, el('span', { class: 'name', text: file.name, title: file.name }),
      item.progress, item.state);
    $('uploads').append(item.row);
    if (limit && file.size > limit) setUploadState(item, 'failed', `not sent: ${bytes(file.size)} is over the ${bytes(limit)} limit`);
    else if (file.size === 0) setUploadState(item, 'failed', 'not sent: the file is empty');
    else { setUploadState(item, 'uploading', 'waiting…'); state.queue.push(item); }
  }
  pump();
}

function pump() {
  while (state.active < PARALLEL_UPLOADS && state.queue.length) send(state.queue.shift());
}

function send(item) {
  state.active += 1;
  setUploadState(item, 'uploading', 'uploading…');
  const form = new FormData();
  form.append('files', item.file, item.file.name);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', `api/albums/${encodeURIComponent(item.album)}/photos`);
  xhr.responseType = 'json';
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) item.progress.value = e.loaded / e.total; };
  const finish = () => { state.active -= 1; pump(); schedule(0); };
  xhr.onload = () => {
    const body = xhr.response;
    const photo = body?.photos?.[0];
    if (xhr.status === 202 && photo?.status === 'RUNNING') {
      item.id = photo.id;
      item.row.dataset.photoId = photo.id;
      state.uploads.set(photo.id, item);
      setUploadState(item, 'processing', 'processing…');
    } else {
      const reason = photo?.error?.message || body?.error?.message || `${xhr.status} ${xhr.statusText}`;
      setUploadState(item, 'failed', `failed: ${reason}`);
    }
    finish();
  };
  xhr.onerror = () => { setUploadState(item, 'failed', 'failed: the upload did not reach the service'); finish(); };
  xhr.send(form);
}

// ---- the grid -------------------------------------------------------------------------------------

function fact(name, value) {
  return value === null || value === undefined || value === '' ? [] : [el('dt', { text: name }), el('dd', { text: String(value) })];
}

function card(p) {
  const m = p.metadata || {};
  const frame = el('div', { class: 'frame' });
  if (p.thumbnail) {
    frame.append(el('img', { src: p.thumbnail.url, alt: p.file_name || 'photo', width: p.thumbnail.width,
      height: p.thumbnail.height, loading: 'lazy' }));
  } else {
    frame.append(el('span', { class: 'placeholder', text: p.status === 'RUNNING' ? 'processing…' : 'no thumbnail' }));
  }
  const labels = el('ul', { class: 'labels' },
    ...(p.labels || []).map((l) => el('li', { text: `${l.label} ${Math.round(l.accuracy * 100)}%` })));
  const location = m.latitude && m.longitude ? `${dms(m.latitude)}, ${dms(m.longitude)}` : null;
  const camera = [m.make, m.model].filter(Boolean).join(' ') || null;
  const size = m.width && m.height ? `${m.width} × ${m.height}` : null;
  const file = [m.format, bytes(m.file_size)].filter(Boolean).join(' · ') || null;
  const facts = el('dl', { class: 'facts' },
    ...fact('people', p.people_count), ...fact('taken', m.creation_time), ...fact('where', location),
    ...fact('camera', camera), ...fact('size', size), ...fact('file', file));
  const link = el('a', { href: p.workflow.url, text: 'workflow', target: '_blank', rel: 'noopener noreferrer',
    title: 'this photo\'s execution history in the Temporal UI' });
  const body = el('div', { class: 'body' },
    el('div', { class: 'title', text: p.file_name || p.id, title: p.file_name || p.id }),
    el('div', {}, el('span', { class: `badge ${p.status}`, text: p.status.toLowerCase() }), ' ', link),
    labels, facts,
    p.error ? el('div', { class: 'reason', text: p.error }) : null);
  return el('article', { class: 'photo', 'data-photo-id': p.id, 'data-status': p.status }, frame, body);
}

function renderGrid(photos) {
  const grid = $('grid');
  const nodes = photos.map((p) => {
    const key = `${p.status}|${p.thumbnail ? 1 : 0}|${p.people_count}`;
    const known = state.cards.get(p.id);
    if (known && known.key === key) return known.node; // unchanged: keep the node (and its loaded image)
    const node = card(p);
    state.cards.set(p.id, { key, node });
    return node;
  });
  grid.replaceChildren(...nodes);
}

function updateUploads(photos) {
  for (const p of photos) {
    const item = state.uploads.get(p.id);
    if (!item || p.status === 'RUNNING') continue;
    setUploadState(item, p.status === 'SUCCEEDED' ? 'done' : 'failed', p.status === 'SUCCEEDED' ? 'done' : `failed: ${p.error}`);
    state.uploads.delete(p.id);
  }
}

function schedule(ms) {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => refresh().catch((err) => showError(err.message)), ms);
}

async function refresh() {
  if (!state.album) return;
  const album = state.album;
  const page = await api(`api/albums/${encodeURIComponent(album)}/photos?limit=${state.shown}`);
  if (album !== state.album) return; // another album was picked meanwhile
  renderGrid(page.photos);
  updateUploads(page.photos);
  const c = page.counts;
  const total = c.RUNNING + c.SUCCEEDED + c.FAILED;
  $('counts').textContent = total ? `${total} photo${total === 1 ? '' : 's'}: ${c.SUCCEEDED} done, ${c.RUNNING} processing, ${c.FAILED} failed` : 'No photos yet.';
  $('more').hidden = !page.next_cursor;
  const count = document.querySelector(`#albums button[data-album-id="${album}"] .n`);
  if (count) count.textContent = `${total}`;
  if (c.RUNNING > 0 || state.active > 0 || state.queue.length > 0 || state.uploads.size > 0) schedule(POLL_MS);
}

// ---- start ----------------------------------------------------------------------------------------

async function start() {
  $('new-album').addEventListener('submit', createAlbum);
  $('files').addEventListener('change', (e) => { addFiles([...e.target.files]); e.target.value = ''; });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); addFiles([...e.dataTransfer.files]); });
  $('more').addEventListener('click', () => { state.shown += state.limits?.page_size || 60; refresh().catch((err) => showError(err.message)); });
  try {
    state.limits = await api('api/limits');
    $('limits').textContent = `Limits: ${bytes(state.limits.max_upload_bytes)} per photo, ${state.limits.max_files} per request. ` +
      `${state.limits.processed_formats.join(' and ')} are processed; anything else is recorded as failed, with the reason.`;
    const albums = await loadAlbums();
    const wanted = location.hash.slice(1);
    const album = albums.find((a) => a.id === wanted);
    if (album) await selectAlbum(album.id, album.name);
  } catch (err) {
    showError(err.message);
  }
}

start();
