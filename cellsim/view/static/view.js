// cellsim view: draws the frames the server streams and sends the user's actions.
// The grid runs on the server (cellsim's asynchronous int8 engine); this page only
// paints RGBA bytes and speaks the JSON messages of docs/view.md.
"use strict";

const $ = (id) => document.getElementById(id);
const HEADER_BYTES = 24;  // magic, width, height, frame number, time, mode (frames.py)
const view = window.cellsimView = {
  frames: 0, frame: null, stats: null, cell: null, errors: [], plan: { head: "", lines: [], tail: "" },
  scale: 8, width: 0, height: 0, tool: "erase", paused: false, fps: 0,
  planText() { return this.plan.head + this.plan.lines.map((l) => "  " + l + "\n").join("") + this.plan.tail; },
};
const canvas = $("grid"), ctx = canvas.getContext("2d");
const offscreen = document.createElement("canvas"), offctx = offscreen.getContext("2d");
const frameTimes = [];
const ws = new WebSocket(`ws://${location.host}/ws`);
view.send = (message) => send(message);  // for scripts and tests: any message of docs/view.md
ws.binaryType = "arraybuffer";

function send(message) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

ws.onopen = () => { $("status").textContent = "connected"; };
ws.onclose = (e) => { $("status").textContent = `disconnected${e.reason ? ": " + e.reason : ""}`; };
ws.onmessage = (e) => {
  if (e.data instanceof ArrayBuffer) drawFrame(e.data);
  else receive(JSON.parse(e.data));
};

function drawFrame(buffer) {
  const d = new DataView(buffer);
  const w = d.getUint16(4, true), h = d.getUint16(6, true);
  const frame = { number: d.getUint32(8, true), time: d.getFloat64(12, true), mode: d.getUint32(20, true), width: w, height: h };
  if (w !== view.width || h !== view.height) resize(w, h);
  const pixels = new Uint8ClampedArray(buffer, HEADER_BYTES, w * h * 4);
  offctx.putImageData(new ImageData(pixels, w, h), 0, 0);
  ctx.imageSmoothingEnabled = false;  // nearest neighbour: one crisp square per cell
  ctx.drawImage(offscreen, 0, 0, w * view.scale, h * view.scale);
  view.frames += 1;
  view.frame = frame;
  const now = performance.now();
  frameTimes.push(now);
  while (frameTimes.length && now - frameTimes[0] > 1000) frameTimes.shift();
  view.fps = frameTimes.length;
}

function resize(w, h) {
  view.width = w; view.height = h;
  view.scale = Math.max(1, Math.floor(576 / Math.max(w, h)));
  offscreen.width = w; offscreen.height = h;
  canvas.width = w * view.scale; canvas.height = h * view.scale;
  $("radius").max = String(Math.min(64, Math.max(w, h)));
}

function receive(m) {
  switch (m.kind) {
    case "hello": return hello(m);
    case "stats": return showStats(m);
    case "cell": return showCell(m);
    case "plan": view.plan = { head: m.head, lines: m.lines, tail: m.tail }; return showPlan();
    case "fault": view.plan.lines.push(m.line); return showPlan();
    case "error":
      view.errors.push(m.message);
      $("message").textContent = m.message;
      return undefined;
    default: return undefined;
  }
}

function fill(select, options, chosen) {
  select.innerHTML = "";
  for (const o of options) {
    const opt = document.createElement("option");
    opt.value = opt.textContent = o;
    select.appendChild(opt);
  }
  if (chosen !== undefined) select.value = chosen;
}

function hello(m) {
  view.session = m.session;
  fill($("model"), m.models, m.config.model);
  fill($("clock"), m.clocks, m.config.clock);
  fill($("mode"), m.modes, "colour");
  $("size").value = m.config.size; $("seed").value = m.config.seed;
  $("skew").value = m.config.skew; $("jitter").value = m.config.jitter;
  $("channel").max = String(m.channels - 1);
  const tools = $("tools");
  tools.innerHTML = "";
  for (const t of m.tools) {
    const b = document.createElement("button");
    b.textContent = t; b.dataset.tool = t; b.id = "tool-" + t;
    b.onclick = () => chooseTool(t);
    tools.appendChild(b);
  }
  chooseTool(view.tool);
  sendSpeed();
}

function chooseTool(t) {
  view.tool = t;
  for (const b of $("tools").children) b.classList.toggle("active", b.dataset.tool === t);
}

const fmt = (x, digits = 1) => Number(x).toLocaleString("en", { maximumFractionDigits: digits });

function showStats(s) {
  view.stats = s;
  const now = performance.now();  // a paused, untouched grid sends no frames
  while (frameTimes.length && now - frameTimes[0] > 1000) frameTimes.shift();
  view.fps = frameTimes.length;
  view.paused = s.paused;
  $("pause").textContent = s.paused ? "Run" : "Pause";
  $("stats").textContent = `t = ${fmt(s.time, 2)}   updates ${fmt(s.updates, 0)}   ` +
    `${fmt(s.updates_per_s / 1e6, 2)} M updates/s   ${view.fps} frames/s   ` +
    `${s.width}x${s.height}   dead ${s.dead}   faults ${s.faults}`;
  const heat = ["channel", "updates", "age"].includes(s.mode);
  $("legend").textContent = heat ? `${s.mode}: ${fmt(s.range[0], 3)} .. ${fmt(s.range[1], 3)}` : "";
}

function valueText(v) {
  if (!Array.isArray(v)) return String(v);
  if (Array.isArray(v[0])) return v.map((row, k) => `${k}: ${row.join(" ")}`).join("\n");
  return v.join(" ");
}

function showCell(c) {
  view.cell = c;
  $("cell-where").textContent = `(${c.x}, ${c.y})${c.dead ? " dead" : ""}`;
  const rows = c.fields.map((f) =>
    `<tr><td>${f.name}<br><span class="hint">@${f.offset} ${f.type}${f.dims.length ? "[" + f.dims.join("][") + "]" : ""}</span></td>` +
    `<td class="v" data-field="${f.name}" title="${f.role}">${valueText(f.value).replace(/\n/g, "<br>")}</td></tr>`);
  rows.push(`<tr><td>state, real</td><td class="v">${c.state_real.join(" ")}</td></tr>`);
  $("cell").innerHTML = rows.join("");
}

function showPlan() {
  $("plan").textContent = view.planText();
  $("plan").scrollTop = $("plan").scrollHeight;
}

function cellAt(e) {
  const r = canvas.getBoundingClientRect();
  const x = Math.floor((e.clientX - r.left - canvas.clientLeft) / view.scale);
  const y = Math.floor((e.clientY - r.top - canvas.clientTop) / view.scale);
  return x >= 0 && y >= 0 && x < view.width && y < view.height ? [x, y] : null;
}

function applyTool(tool, x, y) {
  const m = { kind: "tool", tool, x, y, radius: Number($("radius").value) };
  if (tool === "loss") m.value = Number($("loss-value").value);
  if (tool === "ramflip") m.value = Number($("flip-value").value);
  if (tool === "loss" || tool === "ramflip") m.duration = Number($("duration").value);
  send(m);
}

let lastApplied = null, lastAppliedAt = 0, lastHover = null;
canvas.addEventListener("pointerdown", (e) => {
  const at = cellAt(e);
  if (!at) return;
  canvas.setPointerCapture(e.pointerId);
  applyTool(view.tool, ...at);
  lastApplied = at.join(); lastAppliedAt = performance.now();
});
canvas.addEventListener("pointermove", (e) => {
  const at = cellAt(e);
  if (!at) return;
  const key = at.join(), now = performance.now();
  if ((e.buttons & 1) && view.tool !== "seed" && key !== lastApplied && now - lastAppliedAt > 30) {
    applyTool(view.tool, ...at);
    lastApplied = key; lastAppliedAt = now;
  }
  if (key !== lastHover) { send({ kind: "inspect", x: at[0], y: at[1] }); lastHover = key; }
});
canvas.addEventListener("dblclick", (e) => {
  const at = cellAt(e);
  if (at) applyTool("seed", ...at);
});

// Speed: slider 0..99 from 0.1 to 200 time units a second (log scale), 100 = flat out.
function speedValue() {
  const v = Number($("speed").value);
  return v >= 100 ? null : 0.1 * Math.pow(2000, v / 99);
}
function sendSpeed() {
  const u = speedValue();
  $("speed-label").textContent = u === null ? "as fast as it goes" : `${fmt(u, 2)} units/s`;
  send({ kind: "speed", units_per_s: u });
}
$("speed").value = String(Math.round(99 * Math.log(200) / Math.log(2000)));  // 20 units/s
$("speed").oninput = sendSpeed;
$("radius").oninput = () => { $("radius-label").textContent = $("radius").value; };
$("pause").onclick = () => send({ kind: "pause", paused: !view.paused });
$("step").onclick = () => { send({ kind: "pause", paused: true }); send({ kind: "step", units: 1 }); };
$("reset").onclick = () => send({ kind: "reset" });
$("apply").onclick = () => send({
  kind: "config", model: $("model").value, clock: $("clock").value, skew: Number($("skew").value),
  jitter: Number($("jitter").value), seed: Number($("seed").value), size: Number($("size").value),
});
const sendView = () => send({ kind: "view", mode: $("mode").value, channel: Number($("channel").value) });
$("mode").onchange = sendView;
$("channel").onchange = sendView;
$("download").onclick = () => {
  const url = URL.createObjectURL(new Blob([view.planText()], { type: "application/toml" }));
  const a = document.createElement("a");
  a.href = url; a.download = "plan.toml"; a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
};
document.addEventListener("keydown", (e) => {
  if (e.code === "Space" && e.target === document.body) { e.preventDefault(); $("pause").click(); }
});
