/* The labelling studio: one image at a time with the model's proposal; every action is saved
   at once on the server (PUT /api/label/images/<sha>). Plain JS, no build step. */
"use strict";
onTokenChange(() => loadItems(true));  // tokenInput, tokenNeeded, headers and api: auth.js

const photo = $("photo"), maskCanvas = $("mask"), proposalCanvas = $("proposal"), boxCanvas = $("boxes");
const MASK_RGB = [220, 38, 38], PROPOSAL_RGB = [6, 182, 212];
let items = [], classes = [], current = null, chosenClass = null, tool = "paint";
let state = { label: null, boxes: [] };  // the current image's label, as saved
let proposal = null;                      // { boxes, maskUrl } of the current image
let undoStack = [];
let saving = Promise.resolve();           // saves run one after another, in order
let saves = 0;

function status(message, error) {
  $("status").textContent = message;
  $("status").style.color = error ? "#b91c1c" : "";
}

/* ---------- the item list and progress ---------- */

async function loadItems(openFirst) {
  let body;
  try { body = await api("/api/label/items"); } catch (error) { status(error.message, true); return; }
  tokenNeeded(false);
  items = body.items;
  if (!classes.length) {
    classes = body.classes;
    chosenClass = classes[0] || null;
    drawClassButtons();
    const select = $("export-format");
    select.replaceChildren(...body.formats.map(f => Object.assign(document.createElement("option"), { value: f, textContent: f })));
  }
  showProgress(body.progress);
  drawItems();
  if (openFirst || current === null) {
    const first = items.find(item => item.label === null) || items[0];
    if (first) await openImage(first.sha256);
  }
}

function showProgress(progress) {
  $("progress").textContent = `${progress.labelled}/${progress.total} labelled`;
  $("progress").dataset.labelled = progress.labelled;
  $("per-class").textContent = Object.entries(progress.per_class).map(([k, v]) => `${k}: ${v}`).join(" · ");
}

function drawItems() {
  const list = $("items");
  list.replaceChildren(...items.map(item => {
    const li = document.createElement("li");
    li.dataset.sha = item.sha256;
    const score = item.score === null ? "no score" : item.score.toFixed(3);
    li.textContent = `${item.name} (${item.verdict || "?"} ${score}) — ${item.label || "unlabelled"}`;
    if (item.label) li.classList.add("labelled");
    if (item.sha256 === current) li.classList.add("current");
    li.addEventListener("click", () => openImage(item.sha256));
    return li;
  }));
}

function drawClassButtons() {
  const bar = $("classes");
  const names = ["good", ...classes];
  bar.replaceChildren(...names.map((name, i) => {
    const button = document.createElement("button");
    button.className = "label-key";
    button.dataset.label = name;
    button.textContent = i === 0 ? `good [g]` : `${name} [${i}]`;
    button.addEventListener("click", () => setLabel(name));
    return button;
  }));
}

function showLabel() {
  const badge = $("image-label");
  badge.textContent = state.label || "unlabelled";
  badge.className = "badge" + (state.label === "good" ? " good" : state.label ? " defect" : "");
  for (const button of document.querySelectorAll("#classes button")) {
    button.classList.toggle("chosen", button.dataset.label === (state.label || chosenClass));
  }
  $("stage").dataset.label = state.label || "";
}

/* ---------- images, masks, boxes ---------- */

async function fetchBlobUrl(url) {
  const response = await fetch(url, { headers: headers(false) });
  if (response.status === 401) tokenNeeded(true);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return URL.createObjectURL(await response.blob());
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("image did not load"));
    image.src = src;
  });
}

/* A 0/255 PNG (data URL) drawn as one colour into ``canvas``; ``add`` keeps what is there. */
async function drawBinary(canvas, url, rgb, add) {
  const image = await loadImage(url);
  const scratch = document.createElement("canvas");
  scratch.width = canvas.width; scratch.height = canvas.height;
  const sctx = scratch.getContext("2d");
  sctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  const source = sctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const ctx = canvas.getContext("2d");
  const out = add ? ctx.getImageData(0, 0, canvas.width, canvas.height) : ctx.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < source.length; i += 4) {
    if (source[i] > 127) { out.data[i] = rgb[0]; out.data[i + 1] = rgb[1]; out.data[i + 2] = rgb[2]; out.data[i + 3] = 255; }
  }
  ctx.putImageData(out, 0, 0);
}

function maskPixels() {
  const data = maskCanvas.getContext("2d").getImageData(0, 0, maskCanvas.width, maskCanvas.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i]) n++;
  return n;
}

function drawBoxes(draft) {
  const ctx = boxCanvas.getContext("2d");
  ctx.clearRect(0, 0, boxCanvas.width, boxCanvas.height);
  const width = Math.max(1, boxCanvas.width / 300);
  ctx.lineWidth = width;
  if (proposal) {
    ctx.setLineDash([4 * width, 3 * width]);
    ctx.strokeStyle = "rgb(6,182,212)";
    for (const b of proposal.boxes) ctx.strokeRect(b.box[0], b.box[1], b.box[2] - b.box[0], b.box[3] - b.box[1]);
  }
  ctx.setLineDash([]);
  ctx.strokeStyle = "rgb(250,204,21)";
  for (const b of state.boxes.concat(draft ? [draft] : [])) {
    ctx.strokeRect(b.box[0], b.box[1], b.box[2] - b.box[0], b.box[3] - b.box[1]);
  }
  $("stage").dataset.boxes = state.boxes.length;
}

async function openImage(sha) {
  current = sha;
  document.body.dataset.loaded = "0";
  undoStack = [];
  proposal = null;
  const item = items.find(i => i.sha256 === sha);
  $("image-name").textContent = item ? item.name : sha.slice(0, 12);
  $("image-score").textContent = item && item.score !== null ? `${item.verdict} · score ${item.score.toFixed(3)}` : "";
  $("stage").dataset.sha = sha;
  drawItems();
  try {
    photo.src = await fetchBlobUrl(`/api/label/images/${sha}/file`);
    await photo.decode();
    for (const canvas of [maskCanvas, proposalCanvas, boxCanvas]) {
      canvas.width = photo.naturalWidth; canvas.height = photo.naturalHeight;
    }
    const [saved, proposed] = await Promise.all([api(`/api/label/images/${sha}`), api(`/api/label/images/${sha}/proposal`)]);
    if (current !== sha) return;
    proposal = { boxes: proposed.boxes, maskUrl: proposed.mask_png };
    await drawBinary(proposalCanvas, proposed.mask_png, PROPOSAL_RGB, false);
    state = { label: saved.label, boxes: saved.record ? saved.record.boxes : [] };
    if (saved.mask_png) await drawBinary(maskCanvas, saved.mask_png, MASK_RGB, false);
    showLabel();
    drawBoxes();
    status(proposed.empty ? "the model proposes no defect here" : `the model proposes ${proposed.boxes.length} defect region(s) (blue): accept [a], correct or paint`);
    document.body.dataset.loaded = "1";
  } catch (error) {
    status(error.message, true);
  }
}

/* ---------- actions: each one is undoable and saved at once ---------- */

function snapshot() {
  undoStack.push({ label: state.label, boxes: JSON.parse(JSON.stringify(state.boxes)),
                   mask: maskCanvas.getContext("2d").getImageData(0, 0, maskCanvas.width, maskCanvas.height) });
  if (undoStack.length > 50) undoStack.shift();
}

function defectLabel() {
  if (!state.label || state.label === "good") state.label = chosenClass || classes[0];
  for (const b of state.boxes) b.label = state.label;
}

function save() {
  const sha = current;
  const body = state.label === null ? null : {
    label: state.label,
    mask_png: state.label !== "good" && maskPixels() ? maskCanvas.toDataURL("image/png") : null,
    boxes: state.label === "good" ? [] : state.boxes.map(b => ({ box: b.box, label: state.label })),
  };
  showLabel();
  drawBoxes();
  saving = saving.then(async () => {
    try {
      const done = body === null
        ? await api(`/api/label/images/${sha}`, { method: "DELETE" })
        : await api(`/api/label/images/${sha}`, { method: "PUT", body: JSON.stringify(body) });
      showProgress(done.progress);
      const item = items.find(i => i.sha256 === sha);
      if (item) item.label = body === null ? null : body.label;
      drawItems();
      saves++;
      document.body.dataset.saves = saves;
      status(body === null ? "label removed" : `saved: ${body.label}`);
    } catch (error) {
      status(`not saved: ${error.message}`, true);
    }
  });
  return saving;
}

function setLabel(name) {
  if (!current) return;
  snapshot();
  if (name === "good") {
    state = { label: "good", boxes: [] };
    maskCanvas.getContext("2d").clearRect(0, 0, maskCanvas.width, maskCanvas.height);
  } else {
    chosenClass = name;
    state.label = name;
    for (const b of state.boxes) b.label = name;
  }
  save();
}

/* A click inside the defect, or a rough box dragged around it, guides the model's proposal
   (GrabCut seeded from it); the new proposal replaces the shown one, to accept [a] or correct.
   Nothing is saved by it. */
async function guideProposal(x, y, box = null) {
  const sha = current;
  status(box ? "proposing inside your box…" : "proposing from your click…");
  const query = box ? `box=${box.map(v => v.toFixed(1)).join(",")}` : `x=${x.toFixed(1)}&y=${y.toFixed(1)}`;
  try {
    const proposed = await api(`/api/label/images/${sha}/proposal?${query}`);
    if (current !== sha) return;
    proposal = { boxes: proposed.boxes, maskUrl: proposed.mask_png };
    await drawBinary(proposalCanvas, proposed.mask_png, PROPOSAL_RGB, false);
    $("stage").dataset.guided = String(Number($("stage").dataset.guided || 0) + 1);
    const from = box ? "inside your box" : "from your click";
    status(proposed.empty ? `no region found ${from}` : `proposal ${from}: ${proposed.boxes.length} region(s); accept [a] or correct`);
  } catch (error) {
    status(error.message, true);
  }
}

async function acceptProposal() {
  if (!current || !proposal) return;
  snapshot();
  defectLabel();
  await drawBinary(maskCanvas, proposal.maskUrl, MASK_RGB, true);
  state.boxes = state.boxes.concat(proposal.boxes.map(b => ({ box: b.box.slice(), label: state.label })));
  save();
}

function clearAll() {
  if (!current) return;
  snapshot();
  maskCanvas.getContext("2d").clearRect(0, 0, maskCanvas.width, maskCanvas.height);
  state.boxes = [];
  save();
}

function undo() {
  const last = undoStack.pop();
  if (!last) { status("nothing to undo"); return; }
  state = { label: last.label, boxes: last.boxes };
  maskCanvas.getContext("2d").putImageData(last.mask, 0, 0);
  save();
}

function nextUnlabelled() {
  const order = items.map(i => i.sha256);
  const start = Math.max(0, order.indexOf(current));
  for (let k = 1; k <= items.length; k++) {
    const item = items[(start + k) % items.length];
    if (item.label === null && item.sha256 !== current) return openImage(item.sha256);
  }
  status("every image is labelled: export the new version");
}

function setTool(name) {
  tool = name;
  for (const button of document.querySelectorAll("button.tool")) button.classList.toggle("active", button.dataset.tool === name);
}

/* ---------- pointer: brush, boxes ---------- */

function toImage(event) {
  const rect = boxCanvas.getBoundingClientRect();
  const x = (event.clientX - rect.left) * boxCanvas.width / rect.width;
  const y = (event.clientY - rect.top) * boxCanvas.height / rect.height;
  return [Math.min(Math.max(x, 0), boxCanvas.width), Math.min(Math.max(y, 0), boxCanvas.height)];
}

let drag = null;

boxCanvas.addEventListener("pointerdown", event => {
  if (!current || document.body.dataset.loaded !== "1") return;
  boxCanvas.setPointerCapture(event.pointerId);
  const [x, y] = toImage(event);
  if (tool === "paint" || tool === "erase") {
    snapshot();
    if (tool === "paint") defectLabel();
    const ctx = maskCanvas.getContext("2d");
    const scale = boxCanvas.width / boxCanvas.getBoundingClientRect().width;
    ctx.globalCompositeOperation = tool === "erase" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = `rgb(${MASK_RGB.join(",")})`;
    ctx.lineWidth = Number($("brush").value) * scale;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath(); ctx.arc(x, y, ctx.lineWidth / 2, 0, 2 * Math.PI); ctx.fill();
    ctx.beginPath(); ctx.moveTo(x, y);
    drag = { kind: "stroke" };
  } else if (tool === "guide") {
    drag = { kind: "guide", x0: x, y0: y, draft: null };
  } else if (tool === "box") {
    drag = { kind: "box", x0: x, y0: y, draft: null };
  } else if (tool === "move") {
    const index = state.boxes.map((b, i) => [b, i]).reverse()
      .find(([b]) => x >= b.box[0] && x <= b.box[2] && y >= b.box[1] && y <= b.box[3]);
    if (index) { snapshot(); drag = { kind: "move", index: index[1], x0: x, y0: y, start: index[0].box.slice() }; }
  }
});

boxCanvas.addEventListener("pointermove", event => {
  if (!drag) return;
  const [x, y] = toImage(event);
  if (drag.kind === "stroke") {
    const ctx = maskCanvas.getContext("2d");
    ctx.lineTo(x, y); ctx.stroke(); ctx.beginPath(); ctx.moveTo(x, y);
  } else if (drag.kind === "box" || drag.kind === "guide") {
    drag.draft = { box: [Math.min(drag.x0, x), Math.min(drag.y0, y), Math.max(drag.x0, x), Math.max(drag.y0, y)] };
    drawBoxes(drag.draft);
  } else if (drag.kind === "move") {
    const [x1, y1, x2, y2] = drag.start;
    const dx = Math.min(Math.max(x - drag.x0, -x1), boxCanvas.width - x2);
    const dy = Math.min(Math.max(y - drag.y0, -y1), boxCanvas.height - y2);
    state.boxes[drag.index].box = [x1 + dx, y1 + dy, x2 + dx, y2 + dy];
    drawBoxes();
  }
});

boxCanvas.addEventListener("pointerup", () => {
  const done = drag;
  drag = null;
  if (!done) return;
  if (done.kind === "guide") {  // a click, or a rough box around the defect
    drawBoxes();
    const b = done.draft && done.draft.box;
    if (b && b[2] - b[0] >= 4 && b[3] - b[1] >= 4) guideProposal(null, null, b);
    else guideProposal(done.x0, done.y0);
    return;
  }
  maskCanvas.getContext("2d").globalCompositeOperation = "source-over";
  if (done.kind === "box") {
    const b = done.draft;
    if (!b || b.box[2] - b.box[0] < 2 || b.box[3] - b.box[1] < 2) { drawBoxes(); return; }
    snapshot();
    defectLabel();
    state.boxes.push({ box: b.box, label: state.label });
  }
  save();
});

/* ---------- keys and buttons ---------- */

document.addEventListener("keydown", event => {
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
  const key = event.key.toLowerCase();
  if ((event.ctrlKey || event.metaKey) && key === "z") { event.preventDefault(); undo(); return; }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const digit = Number(key);
  if (key === "g") setLabel("good");
  else if (digit >= 1 && digit <= classes.length) setLabel(classes[digit - 1]);
  else if (key === "a") acceptProposal();
  else if (key === "x") clearAll();
  else if (key === "z") undo();
  else if (key === "n") nextUnlabelled();
  else if (key === "p") setTool("paint");
  else if (key === "e") setTool("erase");
  else if (key === "b") setTool("box");
  else if (key === "m") setTool("move");
  else if (key === "c") setTool("guide");
  else return;
  event.preventDefault();
});

for (const button of document.querySelectorAll("button.tool")) button.addEventListener("click", () => setTool(button.dataset.tool));
$("accept").addEventListener("click", acceptProposal);
$("clear").addEventListener("click", clearAll);
$("undo").addEventListener("click", undo);
$("next").addEventListener("click", nextUnlabelled);
$("export").addEventListener("click", async () => {
  const msg = $("export-msg");
  msg.textContent = "exporting…";
  await saving;  // every label made so far is in the export
  try {
    const done = await api("/api/label/export", { method: "POST", body: JSON.stringify({ format: $("export-format").value }) });
    msg.textContent = `exported ${done.images} labelled image(s) as ${done.format} to ${done.out}` +
      (done.version_id ? ` — version ${done.version_id} (parent ${done.parent_version || "none"})` : "");
    msg.dataset.out = done.out;
  } catch (error) {
    msg.textContent = `export failed: ${error.message}`;
  }
});

setTool("paint");
loadItems(true);
