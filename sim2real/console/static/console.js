// sim2real console page. It only draws what the server says and sends what the operator does:
// what a click means, the rotation, the plan and the safety verdict are decided server-side.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const REPORT_LATENCY = params.get("latency") === "1";
let CLIENT = sessionStorage.getItem("sim2real_client");
if (!CLIENT) {
  CLIENT = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
  sessionStorage.setItem("sim2real_client", CLIENT);
}

let state = null;         // last state from the server
let shownSeq = 0;         // frame on screen
const imgs = { color: null, height: null, pick: null, place: null };
const SCALE_MAX = 2;      // heightmap drawn at most 2 screen px per cell
let category = "";
let outcome = null;

// ---------------------------------------------------------------------------------------------
// server calls
// ---------------------------------------------------------------------------------------------
function headers() {
  const h = { "Content-Type": "application/json", "X-Client-Id": CLIENT };
  if (TOKEN) h["Authorization"] = "Bearer " + TOKEN;
  return h;
}
async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body || {}) });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const text = (data && (data.error || data.detail)) || ("HTTP " + r.status);
    showMessage("error", typeof text === "string" ? text : JSON.stringify(text));
    throw new Error(text);
  }
  return data;
}
function showMessage(level, text) {
  const m = $("message");
  m.textContent = text; m.className = "message " + level; m.title = text;
}

// ---------------------------------------------------------------------------------------------
// live state over the websocket
// ---------------------------------------------------------------------------------------------
function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let url = `${proto}//${location.host}/ws?client=${CLIENT}`;
  if (TOKEN) url += "&token=" + encodeURIComponent(TOKEN);
  const ws = new WebSocket(url);
  ws.onmessage = (ev) => onState(JSON.parse(ev.data));
  ws.onclose = () => { showMessage("error", "disconnected from the console; reconnecting…"); setTimeout(connect, 1000); };
}

function onState(s) {
  const prevMsg = state && state.message && state.message.t;
  state = s;
  if (s.message && s.message.t !== prevMsg) showMessage(s.message.level, s.message.text);
  $("robot-kind").textContent = s.robot;
  $("task-name").textContent = s.task || "-";
  $("busy").hidden = !s.busy; $("busy").textContent = s.busy || "";
  renderControl(s.control);
  document.body.classList.toggle("labels-only", s.mode === "labels");
  if (s.mode === "labels") { renderTrial(s.trial); renderProgress(s.campaign); return; }  // `sim2real run` operator
  renderDemo(s.demo, s.draft);
  renderPlan(s.proposal);
  renderRobot(s.robot_state);
  renderTrial(s.trial);
  renderProgress(s.campaign);
  $("btn-suggest").hidden = !s.policy;
  if (s.policy) $("btn-suggest").textContent = "Ask policy (" + s.policy + ")";
  if (s.frame.seq !== shownSeq && s.frame.seq > 0) loadFrame(s.frame.seq);
  else drawMaps();
  loadAffordances(s.suggestion);
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const im = new Image();
    im.onload = () => resolve(im); im.onerror = reject; im.src = url;
  });
}

let loading = 0;
async function loadFrame(seq) {
  if (loading >= seq) return;
  loading = seq;
  try {
    const [cam, color, height] = await Promise.all(["camera", "color", "height"].map(
      (k) => loadImage(`/api/frame/${seq}/${k}`)));
    if (seq < shownSeq) return;
    $("camera").src = cam.src;
    imgs.color = color; imgs.height = height; shownSeq = seq;
    drawMaps();
    $("frame-info").textContent = `frame ${seq}`;
    $("height-max").textContent = state.frame.height_max.toFixed(3);
    requestAnimationFrame(() => {
      document.body.dataset.shownSeq = String(seq);
      if (REPORT_LATENCY) post("/api/latency", { seq: seq, t_display: Date.now() / 1000 }).catch(() => {});
    });
  } catch (e) { /* the frame was superseded; the next state brings a new one */ }
}

let affordanceKey = "";
async function loadAffordances(sug) {
  const key = sug ? `${sug.seq}:${sug.pick}:${sug.place}` : "";
  if (key === affordanceKey) return;
  affordanceKey = key;
  imgs.pick = sug && sug.pick ? await loadImage(`/api/frame/${sug.seq}/pick`).catch(() => null) : null;
  imgs.place = sug && sug.place ? await loadImage(`/api/frame/${sug.seq}/place`).catch(() => null) : null;
  drawMaps();
}

// ---------------------------------------------------------------------------------------------
// the heightmap canvases: image, workspace grid in metres, affordances, clicks, plan
// ---------------------------------------------------------------------------------------------
function mapScale() {
  const [rows, cols] = state.frame.shape;
  const avail = Math.max(300, window.innerHeight - 150);
  return Math.min(SCALE_MAX, avail / rows, 300 / cols);
}

function drawMaps() {
  if (!state || !imgs.color) return;
  for (const [id, img] of [["heightmap-color", imgs.color], ["heightmap-height", imgs.height]]) {
    drawMap($(id), img, id === "heightmap-color");
  }
}

function drawMap(canvas, img, withAffordances) {
  const [rows, cols] = state.frame.shape;
  const s = mapScale();
  const w = Math.round(cols * s), h = Math.round(rows * s);
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  canvas.style.width = w + "px"; canvas.style.height = h + "px";
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(img, 0, 0, w, h);
  const px = (rc) => [rc[1] * s, rc[0] * s];   // [row, col] (cells) -> canvas [x, y]
  if (withAffordances && state.suggestion && state.suggestion.seq === state.draft.frame_seq) {
    if (imgs.pick) g.drawImage(imgs.pick, 0, 0, w, h);
    if (imgs.place) g.drawImage(imgs.place, 0, 0, w, h);
  }
  drawGrid(g, w, h, s);
  const p = state.proposal;
  if (p) {
    const ok = p.verdict.ok;
    g.strokeStyle = ok ? "rgba(40,220,120,0.95)" : "rgba(255,60,60,0.95)";
    g.lineWidth = 2; g.setLineDash([5, 3]);
    g.beginPath();
    p.waypoints.forEach((wp, i) => { const [x, y] = px(wp.pixel); if (i === 0) g.moveTo(x, y); else g.lineTo(x, y); });
    g.stroke(); g.setLineDash([]);
    g.fillStyle = g.strokeStyle;
    for (const wp of p.waypoints) { const [x, y] = px(wp.pixel); g.beginPath(); g.arc(x, y, 2.5, 0, 2 * Math.PI); g.fill(); }
    // the tool's x axis at the place: a bar through the place point with an arrow head (the server's marker)
    const [m0, m1] = [px(p.marker[0]), px(p.marker[1])];
    const [dx, dy] = [m1[0] - m0[0], m1[1] - m0[1]];
    for (const [width, color] of [[6, "rgba(0,0,0,0.8)"], [3, "#49a3ff"]]) {
      g.strokeStyle = color; g.lineWidth = width; g.beginPath();
      g.moveTo(m0[0] - dx, m0[1] - dy); g.lineTo(m1[0], m1[1]);
      g.moveTo(m1[0], m1[1]); g.lineTo(m1[0] - 0.35 * dx - 0.25 * dy, m1[1] - 0.35 * dy + 0.25 * dx);
      g.moveTo(m1[0], m1[1]); g.lineTo(m1[0] - 0.35 * dx + 0.25 * dy, m1[1] - 0.35 * dy - 0.25 * dx);
      g.stroke();
    }
  }
  const d = state.draft;
  if (d.pick) marker(g, px([d.pick[0] + 0.5, d.pick[1] + 0.5]), "#ff8a00", "pick");
  if (d.place) marker(g, px([d.place[0] + 0.5, d.place[1] + 0.5]), "#49a3ff", "place");
}

function marker(g, [x, y], color, text) {
  g.lineWidth = 3; g.strokeStyle = "#000"; g.beginPath(); g.arc(x, y, 7, 0, 2 * Math.PI); g.stroke();
  g.lineWidth = 2; g.strokeStyle = color; g.beginPath(); g.arc(x, y, 7, 0, 2 * Math.PI); g.stroke();
  g.font = "bold 11px system-ui"; g.lineWidth = 3; g.strokeStyle = "#000"; g.strokeText(text, x + 9, y - 8);
  g.fillStyle = color; g.fillText(text, x + 9, y - 8);
}

function drawGrid(g, w, h, s) {
  // lines every 0.1 m; labels in metres along the top (x) and the left (y)
  const b = state.frame.bounds, ps = state.frame.pixel_size;
  g.font = "10px system-ui"; g.lineWidth = 1;
  const step = 0.1, eps = 1e-9;
  for (let x = Math.ceil(b[0][0] / step - eps) * step; x <= b[0][1] + eps; x += step) {
    const cx = (x - b[0][0]) / ps * s;
    g.strokeStyle = "rgba(255,255,255,0.25)"; g.beginPath(); g.moveTo(cx, 0); g.lineTo(cx, h); g.stroke();
    label(g, x.toFixed(1), Math.min(cx + 2, w - 20), 10);
  }
  for (let y = Math.ceil(b[1][0] / step - eps) * step; y <= b[1][1] + eps; y += step) {
    const cy = (y - b[1][0]) / ps * s;
    g.strokeStyle = "rgba(255,255,255,0.25)"; g.beginPath(); g.moveTo(0, cy); g.lineTo(w, cy); g.stroke();
    label(g, (Math.abs(y) < eps ? 0 : y).toFixed(1), 2, Math.max(cy - 2, 20));
  }
  label(g, "x (m) →", w - 44, h - 4); label(g, "y ↓", 2, h - 4);
}
function label(g, text, x, y) {
  g.strokeStyle = "rgba(0,0,0,0.7)"; g.lineWidth = 3; g.strokeText(text, x, y);
  g.fillStyle = "rgba(255,255,255,0.9)"; g.fillText(text, x, y);
}

function canvasPoint(canvas, ev) {
  const r = canvas.getBoundingClientRect();
  return { x: ev.clientX - r.left, y: ev.clientY - r.top, width: r.width, height: r.height };
}

let down = null;
for (const id of ["heightmap-color", "heightmap-height"]) {
  const c = $(id);
  c.addEventListener("mousedown", (ev) => { down = canvasPoint(c, ev); });
  c.addEventListener("mouseup", (ev) => {
    if (!down || !state) return;
    const up = canvasPoint(c, ev);
    const moved = Math.hypot(up.x - down.x, up.y - down.y);
    const start = down; down = null;
    if (moved > 6 && state.draft.place) {   // a drag sets the place rotation
      post("/api/demo/rotate", { drag_to: { ...up, seq: shownSeq } }).catch(() => {});
    } else {
      post("/api/demo/click", { ...start, seq: shownSeq }).catch(() => {});
    }
  });
}

// ---------------------------------------------------------------------------------------------
// panels
// ---------------------------------------------------------------------------------------------
function renderControl(c) {
  const you = c && c.you;
  $("control-text").textContent = you ? "you control the arm" : (c && c.held ? "watching (another tab controls)" : "no one controls");
  $("control-text").className = you ? "you" : "watch";
  $("btn-take").hidden = you;
  document.body.classList.toggle("watching", !you);
}

function renderDemo(d, draft) {
  $("expecting").textContent = draft.expecting;
  $("rotation").textContent = draft.rotation_deg + "°";
  $("rotation-bin").textContent = draft.rotation;
  $("step-count").textContent = d.n_steps;
  $("seed").textContent = d.seed;
  $("demo-out").textContent = d.demos_out ? "→ " + d.demos_out : "(not saved: no --demos-out)";
  if (document.activeElement !== $("goal") && $("goal").value !== d.goal) $("goal").value = d.goal;
  const dl = $("goal-choices");
  const opts = d.goal_choices.map((g) => `<option value="${escapeHtml(g)}">`).join("");
  if (dl.innerHTML !== opts) dl.innerHTML = opts;
  $("steps").innerHTML = d.steps.map((st) =>
    `<li>pick (${st.pose0.map((v) => v.toFixed(3)).join(", ")}) → place (${st.pose1.map((v) => v.toFixed(3)).join(", ")})`
    + ` · ${(st.rotation_bin || 0) * 10}°${st.reward ? " · reward " + st.reward.toFixed(2) : ""}</li>`).join("");
  $("btn-undo").disabled = d.n_steps === 0;
  $("btn-done").disabled = d.n_steps === 0 || !d.demos_out;
  $("btn-confirm").disabled = !(state.proposal && state.proposal.verdict.ok) || !!state.busy;
  $("saved").textContent = d.saved.length ? `saved episode(s): ${d.saved.join(", ")}` : "";
}

function renderPlan(p) {
  const v = $("verdict");
  if (!p) { v.className = "verdict none"; v.textContent = "no plan"; $("reasons").innerHTML = "";
            $("waypoints").tBodies[0].innerHTML = ""; return; }
  v.className = "verdict " + (p.verdict.ok ? "ok" : "bad");
  v.textContent = p.verdict.ok ? "SAFE" : "REFUSED";
  $("reasons").innerHTML = p.verdict.reasons.map((r) => `<li>${escapeHtml(r)}</li>`).join("");
  $("waypoints").tBodies[0].innerHTML = p.waypoints.map((w) =>
    `<tr><td>${w.segment}${w.tool ? " (" + w.tool + ")" : ""}</td>${w.xyz.map((x) => `<td>${x.toFixed(3)}</td>`).join("")}`
    + `<td>${w.speed ? w.speed.toFixed(2) : ""}</td></tr>`).join("");
}

function renderRobot(r) {
  if (!r || r.error) { $("robot-state").innerHTML = `<tr><td>${escapeHtml((r && r.error) || "-")}</td></tr>`; return; }
  const rows = [["tool xyz (m)", r.tcp_xyz.map((v) => v.toFixed(3)).join(", ")],
                ["joints (rad)", r.joints.map((v) => v.toFixed(2)).join(", ")],
                ["suction / gripper", `${fmt(r.suction)} / ${fmt(r.gripper_closed)}`],
                ["holding", fmt(r.holding)]];
  $("robot-state").innerHTML = rows.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("");
}
const fmt = (v) => (v === null || v === undefined ? "-" : String(v));

let trialKey = null;
function renderTrial(t) {
  $("trial-panel").hidden = !t && !(state.campaign && state.campaign.running);
  $("btn-stop-campaign").hidden = state.mode === "labels";
  if (!t) { $("trial-text").textContent = state.campaign && state.campaign.running ? "trial running…" : "";
            $("trial-reset").hidden = true; $("trial-label").hidden = true; trialKey = null; return; }
  $("trial-text").textContent = t.text;
  $("trial-reset").hidden = t.kind !== "reset";
  $("trial-label").hidden = t.kind !== "label";
  if (t.key !== trialKey) {
    trialKey = t.key;
    const sel = $("category");
    sel.innerHTML = `<option value="">-</option>` + (t.categories || []).map((c) => `<option value="${c}">${c.replace("_", " ")}</option>`).join("");
    outcome = t.suggested_outcome || null; category = t.suggested_category || "";
    sel.value = category; $("note").value = "";
    markOutcome();
  }
}
function markOutcome() {
  for (const b of document.querySelectorAll(".outcomes button")) b.classList.toggle("selected", b.dataset.outcome === outcome);
}

function renderProgress(c) {
  $("progress-panel").hidden = !c;
  if (!c) return;
  $("campaign-dir").textContent = c.out_dir + (c.error ? " · " + c.error : c.running ? "" : " · finished");
  const row = (name, r) => `<tr><td>${name}</td><td>${r.done}${r.planned ? "/" + r.planned : ""}</td><td>${r.successes}</td>`
    + `<td>${r.rate === null ? "-" : (100 * r.rate).toFixed(0) + "%"} (${(100 * r.ci[0]).toFixed(0)}–${(100 * r.ci[1]).toFixed(0)}%)</td></tr>`;
  $("progress").tBodies[0].innerHTML = c.tasks.map((r) => row(r.task, r)).join("") + row("<b>all</b>", c.total);
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// ---------------------------------------------------------------------------------------------
// buttons and keys
// ---------------------------------------------------------------------------------------------
const act = (path, body) => () => post(path, body).catch(() => {});
$("stop").addEventListener("click", act("/api/stop"));
$("btn-take").addEventListener("click", act("/api/control/acquire", { client: CLIENT }));
$("btn-goal").addEventListener("click", () => post("/api/demo/goal", { goal: $("goal").value }).catch(() => {}));
$("goal").addEventListener("keydown", (ev) => { if (ev.key === "Enter") { $("btn-goal").click(); $("goal").blur(); } });
$("btn-rot-minus").addEventListener("click", act("/api/demo/rotate", { delta: -1 }));
$("btn-rot-plus").addEventListener("click", act("/api/demo/rotate", { delta: 1 }));
$("btn-confirm").addEventListener("click", act("/api/demo/confirm"));
$("btn-clear").addEventListener("click", act("/api/demo/clear"));
$("btn-suggest").addEventListener("click", act("/api/demo/suggest"));
$("btn-undo").addEventListener("click", act("/api/demo/undo"));
$("btn-done").addEventListener("click", act("/api/demo/done"));
$("btn-discard").addEventListener("click", () => { if (confirm("Discard this episode?")) post("/api/demo/discard").catch(() => {}); });
$("btn-scene").addEventListener("click", act("/api/demo/scene", {}));
$("btn-reset-done").addEventListener("click", () => post("/api/trial/answer", { key: trialKey, reset: true }).catch(() => {}));
for (const b of document.querySelectorAll(".outcomes button")) b.addEventListener("click", () => { outcome = b.dataset.outcome; markOutcome(); });
$("category").addEventListener("change", () => { category = $("category").value; });
$("btn-label-submit").addEventListener("click", () => {
  if (!outcome) { showMessage("error", "choose success, failure or partial"); return; }
  post("/api/trial/answer", { key: trialKey, outcome: outcome, category: category || null, note: $("note").value })
    .then((r) => showMessage("info", r.duplicate ? "this trial was already labelled: " + r.label.outcome : "label saved: " + r.label.outcome))
    .catch(() => {});
});
$("btn-stop-campaign").addEventListener("click", act("/api/trial/stop-campaign"));

// key presses in quick succession are sent as one rotation (one re-plan instead of one per press)
let pendingTurn = 0, turnTimer = null;
function rotateBy(delta) {
  pendingTurn += delta;
  clearTimeout(turnTimer);
  turnTimer = setTimeout(() => {
    const d = pendingTurn; pendingTurn = 0;
    if (d % 36 !== 0) post("/api/demo/rotate", { delta: d }).catch(() => {});
  }, 80);
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") { ev.preventDefault(); post("/api/stop").catch(() => {}); return; }
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (typing) return;
  if (ev.key === "q" || ev.key === "Q" || ev.key === "[") rotateBy(-1);
  else if (ev.key === "e" || ev.key === "E" || ev.key === "]") rotateBy(1);
  else if (ev.key === "Enter" && !$("btn-confirm").disabled) $("btn-confirm").click();
});
window.addEventListener("resize", drawMaps);

post("/api/control/acquire", { client: CLIENT }).catch(() => {}).finally(connect);
