// teich view: the dataset, conversation and token pages. Plain JS, no dependencies.
// Data arrives as scripts (data/NAME.js calling teichData), so the exported site works from file://.
"use strict";

const store = {};
const waiting = {};
const PAGE_SIZE = 50;
const filters = { search: "", format: "", status: "", errors: false, min: "", max: "", page: 0 };
const KIND_LABELS = {
  template: "template", reasoning: "reasoning", final_answer: "final answer", tool_call: "tool call",
  system: "system", developer: "developer", user: "user", tool_response: "tool response",
};

function teichData(name, value) {
  store[name] = value;
  (waiting[name] || []).forEach((resolve) => resolve(value));
  delete waiting[name];
  if (name === "index") route();
}

function load(name, query) {
  if (store[name] && !query) return Promise.resolve(store[name]);
  return new Promise((resolve, reject) => {
    (waiting[name] = waiting[name] || []).push(resolve);
    const script = document.createElement("script");
    script.src = `data/${name}.js` + (query ? `?${query}` : "");
    script.onload = () => script.remove();
    script.onerror = () => { script.remove(); reject(new Error(`could not load ${name}`)); };
    document.head.appendChild(script);
  });
}

const esc = (text) => String(text ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const app = () => document.getElementById("app");

function route() {
  const index = store.index;
  if (!index) return;
  document.getElementById("dataset-name").textContent = index.name;
  const [, page, row] = location.hash.match(/^#\/(row|tokens)\/(\d+)/) || [];
  const crumbs = document.getElementById("crumbs");
  crumbs.innerHTML = page ? `<a href="#/">rows</a> › row ${row} › ` +
    `<a href="#/row/${row}" class="${page === "row" ? "here" : ""}">conversation</a> · ` +
    `<a href="#/tokens/${row}" class="${page === "tokens" ? "here" : ""}">tokens</a>` : "";
  window.scrollTo(0, 0);
  const show = page === "row" ? showConversation : page === "tokens" ? showTokens : showDataset;
  show(index, Number(row)).catch((error) => { app().innerHTML = `<p class="error">${esc(error.message)}</p>`; });
}
window.addEventListener("hashchange", route);

// ---------------------------------------------------------------- dataset page

function statusBadge(row) {
  const reason = row.reason ? `<span class="reason">${esc(row.reason)}</span>` : "";
  return `<span class="badge st-${row.status}">${row.status}</span>${reason}`;
}

function matches(row) {
  const f = filters;
  const text = `${row.row} ${row.format || ""} ${row.model || ""} ${row.title || ""} ${row.reason || ""}`.toLowerCase();
  return (!f.search || text.includes(f.search.toLowerCase())) &&
    (!f.format || row.format === f.format) && (!f.status || row.status === f.status) &&
    (!f.errors || row.errors > 0) &&
    (f.min === "" || (row.tokens ?? 0) >= Number(f.min)) && (f.max === "" || (row.tokens ?? 0) <= Number(f.max));
}

async function showDataset(index) {
  const formats = [...new Set(index.rows.map((r) => r.format).filter(Boolean))].sort();
  const statuses = [...new Set(index.rows.map((r) => r.status))];
  const option = (value, chosen) => `<option ${value === chosen ? "selected" : ""}>${esc(value)}</option>`;
  app().innerHTML = `
    <section class="cards">${summaryCards(index)}</section>
    <section class="panels">
      <div class="panel"><h3>Row lengths (tokens)</h3>${histogram(index.rows.map((r) => r.tokens).filter((n) => n !== null))}</div>
      <div class="panel"><h3>Trained tokens by kind</h3>${kindBars(index)}</div>
      <div class="panel">${reportTable(index.reports)}</div>
    </section>
    <section class="filters">
      <input id="f-search" type="search" placeholder="Search prompt, model, reason…" value="${esc(filters.search)}">
      <select id="f-format"><option value="">all formats</option>${formats.map((f) => option(f, filters.format)).join("")}</select>
      <select id="f-status"><option value="">any status</option>${statuses.map((s) => option(s, filters.status)).join("")}</select>
      <label><input id="f-errors" type="checkbox" ${filters.errors ? "checked" : ""}> has failed tool calls</label>
      <input id="f-min" type="number" min="0" placeholder="min tokens" value="${esc(filters.min)}">
      <input id="f-max" type="number" min="0" placeholder="max tokens" value="${esc(filters.max)}">
    </section>
    <table id="rows" class="rows"><thead><tr><th>#</th><th>format</th><th>model</th><th>first prompt</th>
      <th class="n">turns</th><th class="n">tool calls</th><th class="n">errors</th><th class="n">tokens</th>
      <th class="n">trained</th><th>status</th></tr></thead><tbody></tbody></table>
    <nav class="pager"><button id="prev">‹ previous</button><span id="page-info"></span><button id="next">next ›</button></nav>`;
  const bind = (id, key, event, value) => document.getElementById(id).addEventListener(event, (e) => {
    filters[key] = value(e.target); filters.page = 0; fillRows(index);
  });
  bind("f-search", "search", "input", (t) => t.value);
  bind("f-format", "format", "change", (t) => t.value);
  bind("f-status", "status", "change", (t) => t.value);
  bind("f-errors", "errors", "change", (t) => t.checked);
  bind("f-min", "min", "input", (t) => t.value);
  bind("f-max", "max", "input", (t) => t.value);
  document.getElementById("prev").onclick = () => { filters.page -= 1; fillRows(index); };
  document.getElementById("next").onclick = () => { filters.page += 1; fillRows(index); };
  fillRows(index);
}

function fillRows(index) {
  const rows = index.rows.filter(matches);
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  filters.page = Math.min(Math.max(filters.page, 0), pages - 1);
  const shown = rows.slice(filters.page * PAGE_SIZE, (filters.page + 1) * PAGE_SIZE);
  document.querySelector("#rows tbody").innerHTML = shown.map((r) => `
    <tr data-row="${r.row}" class="st-row-${r.status}">
      <td class="n"><a href="#/row/${r.row}">${r.row}</a></td><td>${esc(r.format)}</td><td>${esc(r.model)}</td>
      <td class="title"><a href="#/row/${r.row}">${esc(r.title || "(no prompt)")}</a></td>
      <td class="n">${num(r.turns)}</td><td class="n">${num(r.tool_calls)}</td>
      <td class="n ${r.errors ? "has-errors" : ""}">${num(r.errors)}</td>
      <td class="n">${r.tokens === null ? "–" : `<a href="#/tokens/${r.row}">${num(r.tokens)}</a>`}</td>
      <td class="n">${num(r.trained)}</td><td class="status">${statusBadge(r)}</td></tr>`).join("") ||
    `<tr><td colspan="10" class="muted">No row matches the filters.</td></tr>`;
  const first = rows.length ? filters.page * PAGE_SIZE + 1 : 0;
  document.getElementById("page-info").textContent =
    `rows ${first}–${filters.page * PAGE_SIZE + shown.length} of ${rows.length} shown (${index.rows.length} in all)`;
  document.getElementById("prev").disabled = filters.page === 0;
  document.getElementById("next").disabled = filters.page >= pages - 1;
}

function summaryCards(index) {
  const count = (status) => index.rows.filter((r) => r.status === status).length;
  const total = (key) => index.rows.reduce((sum, r) => sum + (r[key] || 0), 0);
  const cards = [["rows", index.rows.length], ["kept", count("kept")], ["trimmed", count("trimmed")],
    ["dropped", count("dropped")], ["tokens", total("tokens")], ["trained tokens", total("trained")]];
  const trained = Object.entries(index.policy).filter(([flag, on]) => flag in index.flags && on)
    .map(([flag]) => KIND_LABELS[index.flags[flag]]);
  return cards.map(([label, value]) => `<div class="card"><div class="value">${num(value)}</div><div class="label">${label}</div></div>`).join("") +
    `<div class="card wide"><div class="label">labels train</div><div class="policy">${esc(trained.join(", ") || "nothing")}</div></div>`;
}

function histogram(values) {
  if (!values.length) return `<p class="muted">No tokens: open the dataset with a tokenizer.</p>`;
  const bins = 16, top = Math.max(...values), width = 320, height = 120;
  const step = Math.max(1, Math.ceil((top + 1) / bins));
  const counts = new Array(bins).fill(0);
  values.forEach((v) => { counts[Math.min(bins - 1, Math.floor(v / step))] += 1; });
  const most = Math.max(...counts), bar = width / bins;
  const rects = counts.map((c, i) => {
    const h = c ? Math.max(2, (c / most) * (height - 16)) : 0;
    return `<rect x="${i * bar + 1}" y="${height - h}" width="${bar - 2}" height="${h}"><title>${num(i * step)}–${num((i + 1) * step - 1)} tokens: ${c} rows</title></rect>`;
  }).join("");
  return `<svg class="hist" viewBox="0 0 ${width} ${height + 18}" role="img">${rects}
    <text x="0" y="${height + 14}">0</text><text x="${width}" y="${height + 14}" text-anchor="end">${num(top)}</text></svg>`;
}

function kindBars(index) {
  const byKind = index.reports.audit?.reasons?.supervised_by_kind || {};
  const entries = Object.entries(byKind);
  if (!entries.length) return `<p class="muted">Nothing trained, or no tokens.</p>`;
  const most = Math.max(...entries.map(([, n]) => n));
  return `<div class="bars">${entries.map(([kind, n]) => `
    <div class="bar-row"><span class="bar-label">${KIND_LABELS[kind] || kind}</span>
      <span class="bar k-${kind}" style="width:${Math.max(1, (n / most) * 100)}%"></span><span class="bar-n">${num(n)}</span></div>`).join("")}</div>`;
}

function reportTable(reports) {
  const report = reports.prepare || reports.load;
  if (!report) return `<h3>Report</h3><p class="muted">No report.</p>`;
  const rows = Object.entries(report.counts).map(([k, v]) => `<tr><td>${esc(k.replace(/_/g, " "))}</td><td class="n">${num(v)}</td></tr>`);
  for (const [group, reasons] of Object.entries(report.reasons)) {
    for (const [reason, n] of Object.entries(reasons)) {
      rows.push(`<tr><td>${esc(group.replace(/_/g, " "))}: ${esc(reason)}</td><td class="n">${num(n)}</td></tr>`);
    }
  }
  return `<h3>${esc(report.report)} report</h3><table class="report">${rows.join("")}</table>`;
}

// ---------------------------------------------------------------- conversation page

async function showConversation(index, row) {
  const data = await load(`row-${row}`);
  const results = {};
  data.messages.forEach((m) => { if (m.role === "tool" && m.tool_call_id) results[m.tool_call_id] = m; });
  const paired = new Set();
  const body = data.messages.map((m, i) => renderMessage(m, i, results, paired)).filter(Boolean).join("");
  const tokens = data.has_tokens ? `<a class="button" href="#/tokens/${row}">show tokens ›</a>` : "";
  app().innerHTML = `
    <div class="row-head"><h2>Row ${row}</h2>${statusBadge(data.status)}${tokens}</div>
    ${data.messages.length ? "" : `<p class="muted">This dataset keeps no messages (a prepared dataset): see its tokens.</p>`}
    <div class="conversation">${body}</div>
    ${toolSchemas(data.tools)}
    <details class="meta"><summary>metadata</summary><pre>${esc(JSON.stringify(data.metadata, null, 2))}</pre></details>`;
}

function contentText(content) {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  return content.map((part) => (part.type === "text" ? part.text : `[${part.type}]`)).join("\n");
}

function renderMessage(m, i, results, paired) {
  if (m.role === "tool" && paired.has(m.tool_call_id)) return "";
  const flag = m.train === undefined ? "" : `<span class="badge">train: ${m.train}</span>`;
  const reasoning = m.reasoning_content ? `<details class="reasoning"><summary>reasoning · ${num(m.reasoning_content.length)} characters</summary><pre>${esc(m.reasoning_content)}</pre></details>` : "";
  const text = contentText(m.content);
  const calls = (m.tool_calls || []).map((call) => {
    const result = results[call.id];
    if (result) paired.add(call.id);
    const args = JSON.stringify(call.function.arguments, null, 2);
    return `<div class="call"><div class="call-head">⚙ ${esc(call.function.name)}</div><pre>${esc(args)}</pre>
      ${result ? toolResult(result) : `<div class="muted">no result</div>`}</div>`;
  }).join("");
  const body = m.role === "tool" ? toolResult(m) : (text ? `<pre class="content">${esc(text)}</pre>` : "");
  return `<div class="msg role-${m.role}" data-message="${i}"><div class="msg-head">${m.role}${m.name ? ` · ${esc(m.name)}` : ""} ${flag}</div>${reasoning}${body}${calls}</div>`;
}

function toolResult(m) {
  const error = m.is_error ? `<span class="badge st-error">✖ failed</span>` : "";
  return `<div class="result ${m.is_error ? "is-error" : ""}"><div class="result-head">result ${error}</div><pre>${esc(contentText(m.content))}</pre></div>`;
}

function toolSchemas(tools) {
  if (!tools.length) return "";
  const items = tools.map((tool) => {
    const fn = tool.function || tool;
    return `<details class="tool"><summary><b>${esc(fn.name)}</b> <span class="muted">${esc((fn.description || "").slice(0, 120))}</span></summary><pre>${esc(JSON.stringify(tool, null, 2))}</pre></details>`;
  }).join("");
  return `<section class="tools"><h3>${tools.length} tools offered</h3>${items}</section>`;
}

// ---------------------------------------------------------------- token page

async function showTokens(index, row) {
  const data = await load(`tokens-${row}`);
  const flags = Object.keys(index.flags);
  const legend = index.kinds.map((kind) => `<span class="key"><span class="swatch k-${kind}"></span>${KIND_LABELS[kind]}</span>`).join("");
  const toggles = flags.map((flag) => `<label class="toggle"><input type="checkbox" data-flag="${flag}" ${index.policy[flag] ? "checked" : ""}>
    <span class="swatch k-${index.flags[flag]}"></span>${flag}</label>`).join("");
  app().innerHTML = `
    <div class="row-head"><h2>Row ${row} · tokens</h2><span id="trained-line"><b id="trained-count">…</b> of ${num(data.ids.length)} tokens trained</span></div>
    <div class="token-top"><div>
      <h3>Span kinds</h3>
      <section class="legend">${legend}
        <span class="key"><span class="sample tr">trained</span> solid, underlined</span>
        <span class="key"><span class="sample">masked</span> pale</span>
        <span class="key"><span class="sample sp">special</span> boxed</span></section>
      <h3>Policy: train on</h3>
      <section class="toggles">${toggles}</section>
      <button id="next-trained">next trained token ›</button>
    </div><table id="kind-counts" class="report"></table></div>
    <div id="token-info" class="muted">Point at a token for its id and kind.</div>
    <div id="tokens" class="tokens">${tokenSpans(data, index.kinds)}</div>`;
  const container = document.getElementById("tokens");
  container.addEventListener("mouseover", (event) => {
    const i = event.target.dataset?.i;
    if (i === undefined) return;
    const kind = index.kinds[data.kinds[i]];
    document.getElementById("token-info").textContent =
      `token ${i} · id ${data.ids[i]} · ${KIND_LABELS[kind]} · ${event.target.classList.contains("tr") ? "trained" : "masked"} · ${JSON.stringify(data.pieces[i])}`;
  });
  const update = () => relabel(index, data, row).catch((error) => {
    document.getElementById("trained-count").textContent = error.message;
  });
  app().querySelectorAll(".toggles input").forEach((box) => box.addEventListener("change", update));
  document.getElementById("next-trained").onclick = () => nextTrained(container);
  data.shown = data.trained;
  applyLabels(data, index, data.trained, currentQuery());
}

// Scroll to the first trained token below the top of the window.
function nextTrained(container) {
  const next = [...container.querySelectorAll("span.tr")].find((span) => span.getBoundingClientRect().top > 80);
  if (next) next.scrollIntoView({ block: "start" });
}

function tokenSpans(data, kinds) {
  const special = new Set(data.special);
  return data.pieces.map((piece, i) =>
    `<span data-i="${i}" class="k-${kinds[data.kinds[i]]}${special.has(i) ? " sp" : ""}${data.trained[i] === "1" ? " tr" : ""}">${esc(piece)}</span>`).join("");
}

function currentQuery() {
  return [...app().querySelectorAll(".toggles input")].map((box) => `${box.dataset.flag}=${box.checked ? 1 : 0}`).join("&");
}

async function relabel(index, data, row) {
  const query = currentQuery();
  let trained;
  if (index.live) {
    trained = (await load(`labels-${row}`, query)).trained;
  } else {
    trained = staticLabels(index, data);
  }
  if (query === currentQuery()) applyLabels(data, index, trained, query);
}

// Labels of the checked flags from the exported per-flag bits (computed in Python): the union of the
// flags' bits, and bit 7 for messages trained whatever the flags; then the dataset's token cap.
function staticLabels(index, data) {
  let mask = 128;
  app().querySelectorAll(".toggles input").forEach((box, bit) => { if (box.checked) mask |= 1 << bit; });
  let left = index.policy.max_supervised_tokens ?? Infinity;
  return data.bits.map((bits) => ((bits & mask) && left-- > 0 ? "1" : "0")).join("");
}

function applyLabels(data, index, trained, query) {
  const spans = document.getElementById("tokens").children;
  const counts = {};
  let total = 0;
  for (let i = 0; i < spans.length; i++) {
    const on = trained[i] === "1";
    if (on !== (data.shown[i] === "1")) spans[i].classList.toggle("tr", on);
    const kind = index.kinds[data.kinds[i]];
    const c = (counts[kind] = counts[kind] || { tokens: 0, trained: 0 });
    c.tokens += 1;
    if (on) { c.trained += 1; total += 1; }
  }
  data.shown = trained;
  const count = document.getElementById("trained-count");
  count.textContent = num(total);
  count.dataset.trained = total;
  count.dataset.query = query;
  document.getElementById("kind-counts").innerHTML = `<tr><th>kind</th><th class="n">tokens</th><th class="n">trained</th></tr>` +
    index.kinds.filter((k) => counts[k]).map((k) => `<tr data-kind="${k}"><td><span class="swatch k-${k}"></span>${KIND_LABELS[k]}</td>
      <td class="n">${num(counts[k].tokens)}</td><td class="n trained">${num(counts[k].trained)}</td></tr>`).join("");
}
