// GET /dashboard: one self-contained page (no build step, no CDN) drawing the live usage stream.

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>llmtap usage</title>
<style>
  :root { --bg:#0f1419; --panel:#161c23; --line:#263040; --text:#d8dee9; --dim:#8391a5; --accent:#5fb3f9; --ok:#6fcf97; --bad:#f2777a; --warn:#f2c14e; }
  * { box-sizing: border-box; }
  body { margin:0; background:var(--bg); color:var(--text); font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
  header { display:flex; align-items:center; gap:12px; padding:12px 20px; border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; font-weight:600; }
  #conn { font-size:12px; color:var(--dim); }
  #conn::before { content:""; display:inline-block; width:8px; height:8px; border-radius:50%; margin-right:6px; background:var(--bad); vertical-align:middle; }
  #conn.live::before { background:var(--ok); }
  main { padding:16px 20px; display:grid; gap:16px; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 14px; min-width:0; }
  section h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--dim); margin:0 0 10px; font-weight:600; }
  .cards { grid-column: 1 / -1; display:grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap:12px; }
  .card { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
  .card .label { color:var(--dim); font-size:12px; }
  .card .value { font-size:24px; font-weight:600; font-variant-numeric: tabular-nums; }
  table { width:100%; border-collapse:collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; max-width:220px; }
  th { color:var(--dim); font-weight:500; font-size:12px; }
  td.n, th.n { text-align:right; }
  .empty { color:var(--dim); font-style:italic; padding:6px; }
  .spark { width:100%; height:90px; display:block; }
  .spark polyline { fill:none; stroke:var(--accent); stroke-width:1.5; }
  .spark .area { fill:rgba(95,179,249,.12); stroke:none; }
  .sparkhead { display:flex; justify-content:space-between; color:var(--dim); font-size:12px; margin-bottom:4px; }
  .sparkhead b { color:var(--text); font-weight:600; }
  .err { color:var(--bad); }
  #auth { display:none; gap:8px; align-items:center; }
  #auth input { background:var(--bg); color:var(--text); border:1px solid var(--line); border-radius:4px; padding:4px 8px; }
  #auth button { background:var(--accent); border:0; border-radius:4px; padding:5px 10px; cursor:pointer; }
</style>
</head>
<body>
<header>
  <h1>llmtap usage</h1>
  <span id="conn">connecting…</span>
  <form id="auth"><input id="token" type="password" placeholder="admin token" autocomplete="off"><button type="submit">connect</button></form>
</header>
<main>
  <div class="cards">
    <div class="card"><div class="label">active now</div><div class="value" id="c-active">–</div></div>
    <div class="card"><div class="label">requests</div><div class="value" id="c-requests">–</div></div>
    <div class="card"><div class="label">errors</div><div class="value" id="c-errors">–</div></div>
    <div class="card"><div class="label">input tokens</div><div class="value" id="c-input">–</div></div>
    <div class="card"><div class="label">output tokens</div><div class="value" id="c-output">–</div></div>
    <div class="card"><div class="label">cost (USD)</div><div class="value" id="c-cost">–</div></div>
  </div>
  <section>
    <h2>time to first chunk</h2>
    <div class="sparkhead"><span>last <span id="ttft-n">0</span> streamed exchanges</span><span>latest <b id="ttft-last">–</b> · p50 <b id="ttft-p50">–</b></span></div>
    <svg class="spark" id="ttft-spark" viewBox="0 0 300 90" preserveAspectRatio="none"></svg>
  </section>
  <section>
    <h2>output tokens per second</h2>
    <div class="sparkhead"><span>last 60 s</span><span>now <b id="tps-last">0</b> · peak <b id="tps-peak">0</b></span></div>
    <svg class="spark" id="tps-spark" viewBox="0 0 300 90" preserveAspectRatio="none"></svg>
  </section>
  <section>
    <h2>active exchanges</h2>
    <table><thead><tr><th>model</th><th>upstream</th><th>stream</th><th class="n">age</th><th class="n">bytes in</th><th class="n">bytes out</th></tr></thead><tbody id="active"></tbody></table>
  </section>
  <section>
    <h2>per model (all time)</h2>
    <table><thead><tr><th>model</th><th>provider</th><th class="n">requests</th><th class="n">errors</th><th class="n">in</th><th class="n">out</th><th class="n">cost</th></tr></thead><tbody id="models"></tbody></table>
  </section>
  <section style="grid-column: 1 / -1">
    <h2>recent exchanges</h2>
    <table><thead><tr><th>time</th><th>model</th><th>upstream</th><th>status</th><th>outcome</th><th class="n">ttft</th><th class="n">duration</th><th class="n">in / out</th><th class="n">cost</th></tr></thead><tbody id="recent"></tbody></table>
  </section>
</main>
<script>
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat("en-US");
  const n = (v) => (v === null || v === undefined ? "–" : fmt.format(v));
  const ms = (v) => (v === null || v === undefined ? "–" : v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(2) + " s");
  const usd = (v) => (v === null || v === undefined ? "–" : v === 0 ? "0" : v < 0.01 ? v.toPrecision(2) : v.toFixed(v < 10 ? 4 : 2));
  const bytes = (v) => (v < 1024 ? v + " B" : v < 1048576 ? (v / 1024).toFixed(1) + " KB" : (v / 1048576).toFixed(1) + " MB");

  function row(cells, classes) {
    const tr = document.createElement("tr");
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = String(c);
      if (classes && classes[i]) td.className = classes[i];
      tr.appendChild(td);
    });
    return tr;
  }
  function fill(tbody, rows, emptyText, width) {
    tbody.replaceChildren();
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = width;
      td.className = "empty";
      td.textContent = emptyText;
      tr.appendChild(td);
      tbody.appendChild(tr);
      return;
    }
    for (const r of rows) tbody.appendChild(r);
  }
  function spark(svg, values) {
    const NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    if (values.length === 0) return;
    const max = Math.max(1e-9, ...values);
    const step = values.length > 1 ? 300 / (values.length - 1) : 0;
    const pts = values.map((v, i) => (i * step).toFixed(1) + "," + (86 - (v / max) * 80).toFixed(1));
    const area = document.createElementNS(NS, "polygon");
    area.setAttribute("class", "area");
    area.setAttribute("points", "0,90 " + pts.join(" ") + " " + ((values.length - 1) * step).toFixed(1) + ",90");
    const line = document.createElementNS(NS, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(area);
    svg.appendChild(line);
  }

  // Charts are fed by finished exchanges: ttft per exchange, output tokens bucketed per second of arrival.
  const ttfts = [];
  const perSecond = new Map();
  const recent = [];
  let active = [];
  let activeAt = Date.now();

  function addFinished(list) {
    const now = Math.floor(Date.now() / 1000);
    for (const r of list) {
      if (r.ttft !== null && r.ttft !== undefined) {
        ttfts.push(r.ttft);
        if (ttfts.length > 60) ttfts.shift();
      }
      const end = Math.min(now, Math.floor((Date.parse(r.time) + (r.duration || 0)) / 1000));
      if (r.outputTokens && now - end < 60) perSecond.set(end, (perSecond.get(end) || 0) + r.outputTokens);
      recent.unshift(r);
    }
    recent.length = Math.min(recent.length, 15);
  }

  function drawCharts() {
    spark($("ttft-spark"), ttfts);
    $("ttft-n").textContent = String(ttfts.length);
    $("ttft-last").textContent = ttfts.length ? ms(ttfts[ttfts.length - 1]) : "–";
    const sorted = ttfts.slice().sort((a, b) => a - b);
    $("ttft-p50").textContent = sorted.length ? ms(sorted[Math.ceil(sorted.length / 2) - 1]) : "–";
    const now = Math.floor(Date.now() / 1000);
    const tps = [];
    for (let s = now - 59; s <= now; s++) tps.push(perSecond.get(s) || 0);
    for (const k of perSecond.keys()) if (k < now - 60) perSecond.delete(k);
    spark($("tps-spark"), tps);
    $("tps-last").textContent = n(tps[tps.length - 2] || tps[tps.length - 1]);
    $("tps-peak").textContent = n(Math.max(0, ...tps));
  }

  function drawActive() {
    const drift = Date.now() - activeAt;
    fill($("active"), active.map((a) => row([a.model, a.upstream, a.stream ? "yes" : "no", ms(a.ageMs + drift), bytes(a.bytes.fromUpstream), bytes(a.bytes.sentToClient)], [0, 0, 0, "n", "n", "n"])), "nothing in flight", 6);
    $("c-active").textContent = n(active.length);
  }

  function render(d) {
    const t = d.totals || {};
    $("c-requests").textContent = n(t.requests);
    $("c-errors").textContent = n(t.errors);
    $("c-input").textContent = n(t.inputTokens);
    $("c-output").textContent = n(t.outputTokens);
    $("c-cost").textContent = usd(t.cost);
    active = d.active || [];
    activeAt = Date.now();
    drawActive();
    fill($("models"), (d.models || []).map((m) => row([m.model, m.provider, n(m.requests), n(m.errors), n(m.inputTokens), n(m.outputTokens), m.pricedRequests ? usd(m.cost) : "–"], [0, 0, "n", "n", "n", "n", "n"])), "no exchanges yet", 7);
    addFinished(d.finished || []);
    fill($("recent"), recent.map((r) => row([new Date(r.time).toLocaleTimeString(), r.model, r.upstream, r.status === null ? "–" : r.status, r.outcome, ms(r.ttft), ms(r.duration), n(r.inputTokens) + " / " + n(r.outputTokens), usd(r.cost)], [0, 0, 0, 0, r.outcome === "ok" ? 0 : "err", "n", "n", "n", "n"])), "no exchanges yet", 9);
    drawCharts();
  }

  const conn = $("conn");
  let token = (new URLSearchParams(location.hash.slice(1))).get("token") || "";
  let controller = null;

  // fetch rather than EventSource, so an admin token can travel in the Authorization header.
  async function connect() {
    controller = new AbortController();
    const headers = token ? { authorization: "Bearer " + token } : {};
    let res;
    try {
      res = await fetch("/api/usage-stream", { headers, signal: controller.signal, cache: "no-store" });
    } catch (e) {
      conn.className = "";
      conn.textContent = "llmtap is not reachable; retrying";
      return setTimeout(connect, 2000);
    }
    if (res.status === 401 || res.status === 403) {
      const body = await res.json().catch(() => ({}));
      conn.className = "";
      conn.textContent = (body.error && body.error.message) || "not allowed";
      $("auth").style.display = res.status === 401 ? "flex" : "none";
      return;
    }
    if (!res.ok || !res.body) {
      conn.className = "";
      conn.textContent = "usage stream answered " + res.status + "; retrying";
      return setTimeout(connect, 2000);
    }
    conn.className = "live";
    conn.textContent = "live";
    $("auth").style.display = "none";
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let at;
        while ((at = buf.indexOf("\\n\\n")) !== -1) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          const data = block.split("\\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\\n");
          if (data) render(JSON.parse(data));
        }
      }
    } catch (e) {
      /* the stream broke: reconnect below */
    }
    conn.className = "";
    conn.textContent = "disconnected; reconnecting";
    setTimeout(connect, 2000);
  }

  $("auth").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value;
    conn.textContent = "connecting…";
    connect();
  });
  setInterval(() => { drawActive(); drawCharts(); }, 1000);
  connect();
})();
</script>
</body>
</html>
`;
