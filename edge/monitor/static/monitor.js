// myoedge monitor page: one WebSocket (/ws) of JSON messages (hello, then ticks at 30 Hz), drawn with uPlot.
// Buffers are trimmed to the server's history window, so nothing grows while the page stays open.
"use strict";
const PALETTE = ["#3b7dd8", "#e67e22", "#2a9d55", "#8e44ad", "#c0392b", "#16a085", "#d35400", "#7f8c8d"];
const FLAG_COLORS = {STALE: "#c0392b", SATURATED: "#e67e22", ELECTRODE_OFF: "#8e44ad", LOST_FRAMES: "#d35400",
  OUT_OF_RANGE: "#b03a6f", WARMING_UP: "#c9a227", TORQUE_CLAMPED: "#5dade2", OUT_OF_DISTRIBUTION: "#16a085",
  FLAT_OUTPUT: "#7f8c8d", RECONSTRUCTED: "#a3c4f3"};
const S = {mode: null, flags: [], invalid: 0, hist: 15, lastMsg: 0, dirty: false, lastDraw: 0, draws: 0,
  t: [], theta: [], torque: [], fl: [], forces: [], muscles: [], nForces: 0, plots: {}, mvcMax: [], ws: null};
window.monitor = S;  // for tests and the curious: what the page holds

const $ = (id) => document.getElementById(id);
function setState(state, reason) {
  const el = $("state");
  el.dataset.state = state;
  el.textContent = state === "live" ? "live" : reason;
  el.title = reason;
}
function esc(text) {  // names come from the amplifier's labels: never markup
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
function fmt(v, digits = 3) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }
function width(el) { return Math.max(300, el.parentElement.clientWidth - 10); }

function flagNames(bits) { return S.flags.filter((f) => bits & f.bit); }
function flagColor(bits) { const f = S.flags.find((f) => bits & f.bit); return f ? FLAG_COLORS[f.name] || "#999" : null; }

// coloured bands behind a plot wherever a point carries a flag
function bandsPlugin() {
  return {hooks: {drawClear: [(u) => {
    const xs = u.data[0], n = xs.length, ctx = u.ctx, {top, height} = u.bbox;
    let i = 0;
    while (i < n) {
      const c = flagColor(S.fl[i] || 0);
      if (!c) { i++; continue; }
      let j = i;
      while (j + 1 < n && flagColor(S.fl[j + 1] || 0) === c) j++;
      const x0 = u.valToPos(xs[i], "x", true), x1 = u.valToPos(xs[Math.min(j + 1, n - 1)], "x", true);
      ctx.save(); ctx.globalAlpha = 0.22; ctx.fillStyle = c;
      ctx.fillRect(x0, top, Math.max(x1 - x0, 2), height); ctx.restore();
      i = j + 1;
    }
  }], setCursor: [(u) => {
    const tip = $("tooltip"), i = u.cursor.idx;
    if (i === null || i === undefined || u.cursor.left < 0 || !S.fl[i]) { tip.hidden = true; return; }
    const box = u.over.getBoundingClientRect();
    tip.innerHTML = flagNames(S.fl[i]).map((f) => `<b>${f.name}</b>${f.invalid ? "" : " (info)"}: ${f.reason}`)
      .join("<br>");
    tip.style.left = `${box.left + u.cursor.left + 12}px`;
    tip.style.top = `${box.top + u.cursor.top + 12}px`;
    tip.hidden = false;
  }]}};
}

function linePlot(el, label, series, plugins = []) {
  const opts = {width: width(el), height: 190, plugins, legend: {show: series.length > 1},
    scales: {x: {time: false}}, axes: [{label: "s"}, {}],
    series: [{label: "t"}, ...series.map((s, k) => ({label: s.label || label, stroke: s.stroke || PALETTE[k % 8],
      width: 1.5, dash: s.dash, spanGaps: false}))]};
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

function setupRun(msg) {
  $("run-view").hidden = false; $("mode").textContent = "run";
  S.flags = msg.flags; S.invalid = msg.invalid_mask; S.hist = msg.history_s; S.muscles = msg.muscles;
  $("flag-legend").innerHTML = S.flags.map((f) => `<li title="${f.reason}"><span class="swatch" ` +
    `style="background:${FLAG_COLORS[f.name]}"></span>${f.name}${f.invalid ? "" : " (info)"}</li>`).join("");
  S.plots.theta = linePlot($("theta-plot"), "θ (rad)", [{}], [bandsPlugin()]);
  S.plots.torque = linePlot($("torque-plot"), "τ (N·m)", [{stroke: "#2a9d55"}], [bandsPlugin()]);
}

function forcePlot(n) {
  if (S.plots.force && S.nForces === n) return;
  if (S.plots.force) S.plots.force.destroy();
  S.nForces = n;
  const names = Array.from({length: n}, (_, k) => S.muscles[k] || `F${k + 1}`);
  S.plots.force = linePlot($("force-plot"), "N", names.map((m) => ({label: m})));
}

function applyRun(msg) {
  setState(msg.state, msg.reason);
  const last = S.t.length ? S.t[S.t.length - 1] : -Infinity;
  for (const [t, theta, torque, flags, forces] of msg.points) {
    if (t <= last) continue;  // a tab's hello and the next tick may share points
    S.t.push(t); S.theta.push(theta); S.torque.push(torque); S.fl.push(flags); S.forces.push(forces);
    S.dirty = true;
  }
  if (S.t.length) {
    const cut = S.t[S.t.length - 1] - S.hist;
    let k = 0; while (k < S.t.length && S.t[k] < cut) k++;
    if (k) for (const a of [S.t, S.theta, S.torque, S.fl, S.forces]) a.splice(0, k);
  }
  if (msg.n_forces) forcePlot(msg.n_forces);
  const st = msg.status, c = msg.counts, rows = [
    ["estimates received", c.estimates], ["datagrams lost (index gaps)", c.datagrams_lost],
    ["datagrams rejected", c.rejected]];
  if (st) {
    rows.push(["frames", st.frames], ["frames lost", st.lost_frames], ["CRC errors", st.crc_errors],
      ["reconnects", st.reconnects], ["resets", st.resets], ["invalid estimates", st.invalid_estimates],
      ["stale estimates", st.stale_estimates], ["deadline misses", st.deadline_misses],
      ["latency p50 / p99 (µs)", `${fmt(st.latency_p50_us, 0)} / ${fmt(st.latency_p99_us, 0)}`],
      ["latency p99.9 / max (µs)", `${fmt(st.latency_p999_us, 0)} / ${fmt(st.latency_max_us, 0)}`]);
    $("status-note").textContent = `watchdog ${st.watchdog_ms} ms; latency over the last second`;
    bars($("env-bars"), st.envelopes.map((v, k) => [S.muscles[k] || `ch${k + 1}`, v, 1.0, fmt(v, 2)]));
  } else {
    $("status-note").textContent = "no status datagrams: run `myoedge run ... --status-hz 20` for frame " +
      "counters, latency and envelopes";
  }
  if (c.last_rejection) $("status-note").textContent += ` · last rejected: ${c.last_rejection}`;
  $("counters").innerHTML = rows.map(([k, v]) => `<tr><td>${k}</td><td class="num">${v}</td></tr>`).join("");
}

function bars(el, items, own = false) {  // items: [name, value, marker (max), text]; own: a scale per bar
  const top0 = Math.max(1e-12, ...items.map(([, v, m]) => Math.max(v || 0, m || 0))) * 1.1;
  el.innerHTML = items.map(([name, v, m, text]) => {
    const top = own ? Math.max(1e-12, v || 0, m || 0) * 1.1 : top0;
    return `<div class="bar"><span class="name">${esc(name)}</span>` +
    `<span class="track"><span class="fill" style="width:${100 * Math.min(1, (v || 0) / top)}%"></span>` +
    (m ? `<span class="max" style="left:${100 * m / top}%"></span>` : "") + `</span>` +
    `<span class="num">${text}</span></div>`;
  }).join("");
}

function drawRun() {
  const n = S.t.length;
  S.plots.theta.setData([S.t, S.theta]);
  S.plots.torque.setData([S.t, S.torque]);
  if (S.plots.force) {
    S.plots.force.setData([S.t, ...Array.from({length: S.nForces}, (_, k) => S.forces.map((f) => f[k]))]);
  }
  if (n) {
    $("theta-value").textContent = fmt(S.theta[n - 1]);
    $("torque-value").textContent = fmt(S.torque[n - 1]);
    const now = flagNames(S.fl[n - 1]);
    $("flag-now").textContent = now.length ? "newest: " + now.map((f) => f.name).join(", ") : "newest: no flag";
  }
  $("theta-plot").dataset.points = n;
  $("theta-plot").dataset.lastT = n ? S.t[n - 1] : "";
}

function setupMvc(msg) {
  $("mvc-view").hidden = false; $("mode").textContent = "MVC session";
  S.mvcMuscles = [];
}

function applyMvc(msg) {
  setState(msg.phase === "failed" ? "stale" : "live", msg.prompt);
  $("prompt").textContent = msg.prompt; $("prompt").dataset.phase = msg.phase;
  $("countdown").textContent = msg.countdown ? msg.countdown : "";
  const m = msg.muscles;
  if (m.length && m.join() !== (S.mvcMuscles || []).join()) {
    S.mvcMuscles = m; S.mvcMax = msg.running_max.map((v) => v || 0);
    if (S.plots.mvc) S.plots.mvc.destroy();
    S.plots.mvc = linePlot($("mvc-plot"), "µV", [...m.map((x, k) => ({label: x, stroke: PALETTE[k]})),
      ...m.map((x, k) => ({label: `${x} max`, stroke: PALETTE[k], dash: [6, 4]}))]);
    S.t = []; S.env = m.map(() => []); S.envMax = m.map(() => []);
  }
  const last = S.t.length ? S.t[S.t.length - 1] : -Infinity;
  for (const [t, levels] of msg.points) {
    if (t <= last || !S.env) continue;
    S.t.push(t);
    levels.forEach((v, k) => { S.mvcMax[k] = Math.max(S.mvcMax[k] || 0, v || 0);
      S.env[k].push(v === null ? null : 1e6 * v); S.envMax[k].push(1e6 * S.mvcMax[k]); });
    S.dirty = true;
  }
  if (S.t.length > 600) { const k = S.t.length - 600; S.t.splice(0, k); S.env.forEach((a) => a.splice(0, k));
    S.envMax.forEach((a) => a.splice(0, k)); }
  bars($("mvc-bars"), m.map((x, k) => [x, msg.levels[k], msg.running_max[k],
    `${fmt(1e6 * (msg.levels[k] || 0), 1)} µV`]), true);
  $("reps").innerHTML = msg.repetitions.map((r) => `<li class="rep ${r.accepted ? "accepted" : "rejected"}">` +
    `${esc(r.muscle)} #${r.attempt}: ` + (r.accepted ? `accepted, ${fmt(1e6 * r.mvc_volts, 1)} µV` +
    (r.rest_volts ? ` (${fmt(r.mvc_volts / r.rest_volts, 0)}× rest)` : "") : `rejected: ${esc(r.reason)}`) +
    `</li>`).join("");
}

function drawMvc() { if (S.plots.mvc && S.env) S.plots.mvc.setData([S.t, ...S.env, ...S.envMax]); }

function onMessage(ev) {
  const msg = JSON.parse(ev.data);
  S.lastMsg = performance.now();
  if (msg.type === "hello") {
    $("source").textContent = msg.source;
    if (S.mode !== msg.mode) { S.mode = msg.mode; (msg.mode === "mvc" ? setupMvc : setupRun)(msg); }
    // a (re)connection starts from the server's history: its clock may have restarted with it
    S.t = []; S.theta = []; S.torque = []; S.fl = []; S.forces = []; S.mvcMuscles = []; S.dirty = true;
  }
  if (S.mode === "run") applyRun(msg); else applyMvc(msg);
}

function connect() {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  S.ws = ws;
  ws.onmessage = onMessage;
  ws.onclose = () => { setState("disconnected", "the monitor stopped: reconnecting…"); setTimeout(connect, 1000); };
}

function frame(now) {  // redraw at most 30 times a second, and only when something new came
  if (S.dirty && now - S.lastDraw >= 33) {
    S.dirty = false; S.lastDraw = now; S.draws++;
    if (S.mode === "run") drawRun(); else if (S.mode === "mvc") drawMvc();
  }
  requestAnimationFrame(frame);
}

setInterval(() => {  // the monitor itself went quiet: say so within a second
  if (S.ws && S.ws.readyState === 1 && performance.now() - S.lastMsg > 1000) {
    setState("stale", "stale: no message from the monitor for over 1 s");
  }
}, 200);
window.addEventListener("resize", () => {
  for (const p of Object.values(S.plots)) if (p) p.setSize({width: width(p.root), height: 190});
});
connect();
requestAnimationFrame(frame);
