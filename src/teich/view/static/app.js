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
  if (name === "index") { route(); followPreparation(value); }
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

const finished = (index) => index.done >= index.rows.length || Boolean(index.failure);

// While the server prepares the rows in the background, ask it every half second for the rows
// prepared since (their tokens, trained tokens and status) and fill them in, the report at the end.
function followPreparation(index) {
  if (finished(index) || index.following) return;
  index.following = true;
  const poll = () => load("progress", `from=${index.done}`).then((progress) => {
    progress.rows.forEach((prepared, i) => Object.assign(index.rows[index.done + i], prepared));
    index.done = progress.done;
    index.failure = progress.failure;
    if (progress.reports) index.reports = progress.reports; else setTimeout(poll, 500);
    refreshDataset(index);
  }).catch(() => setTimeout(poll, 2000));
  setTimeout(poll, 500);
}

function preparingLine(index) {
  if (index.failure) return `<span class="error">${esc(index.failure)}</span>`;
  return finished(index) ? "" : `<span class="spinner"></span>preparing ${num(index.done)}/${num(index.rows.length)} rows…`;
}

function statusOptions(index) {
  const statuses = [...new Set(index.rows.map((r) => r.status))];
  return `<option value="">any status</option>` +
    statuses.map((s) => `<option ${s === filters.status ? "selected" : ""}>${esc(s)}</option>`).join("");
}

const lengthsPlot = (index) => histogram(index.rows.map((r) => r.tokens).filter((n) => n !== null && n !== undefined));

// The dataset page's parts that preparing fills in, redrawn as its results come (the filters stay).
function refreshDataset(index) {
  if (!document.getElementById("cards")) return;
  document.getElementById("cards").innerHTML = summaryCards(index);
  document.getElementById("lengths").innerHTML = lengthsPlot(index);
  document.getElementById("report").innerHTML = reportTable(index.reports);
  document.getElementById("preparing").innerHTML = preparingLine(index);
  document.getElementById("f-status").innerHTML = statusOptions(index);
  fillRows(index);
  if (finished(index)) loadKinds();
}

function loadKinds() {
  load("stats").then((stats) => { const box = document.getElementById("by-kind"); if (box) box.innerHTML = kindBars(stats); });
}

async function showDataset(index) {
  const formats = [...new Set(index.rows.map((r) => r.format).filter(Boolean))].sort();
  const option = (value, chosen) => `<option ${value === chosen ? "selected" : ""}>${esc(value)}</option>`;
  app().innerHTML = `
    <p id="preparing" class="preparing muted">${preparingLine(index)}</p>
    <section class="cards" id="cards">${summaryCards(index)}</section>
    <section class="panels">
      <div class="panel"><h3>Row lengths</h3><div id="lengths">${lengthsPlot(index)}</div></div>
      <div class="panel"><h3>Trained tokens by kind</h3><div id="by-kind"><p class="muted">Counting…</p></div></div>
      <div class="panel" id="report">${reportTable(index.reports)}</div>
      ${redactionPanel(index)}
    </section>
    <section class="filters">
      <input id="f-search" type="search" placeholder="Search prompt, model, reason…" value="${esc(filters.search)}">
      <select id="f-format"><option value="">all formats</option>${formats.map((f) => option(f, filters.format)).join("")}</select>
      <select id="f-status">${statusOptions(index)}</select>
      <label><input id="f-errors" type="checkbox" ${filters.errors ? "checked" : ""}> has failed tool calls</label>
      <input id="f-min" type="number" min="0" placeholder="min tokens" value="${esc(filters.min)}">
      <input id="f-max" type="number" min="0" placeholder="max tokens" value="${esc(filters.max)}">
    </section>
    <table id="rows" class="rows"><thead><tr><th>#</th><th>format</th><th>model</th><th>first prompt</th>
      <th class="n">turns</th><th class="n">tool calls</th><th class="n">errors</th><th class="n">tokens</th>
      <th class="n">trained</th><th class="n">redacted</th><th>status</th></tr></thead><tbody></tbody></table>
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
  if (finished(index)) loadKinds();
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
      <td class="n">${tokensCell(index, r)}</td>
      <td class="n">${num(r.trained)}</td><td class="n">${redactedCount(r)}</td><td class="status">${statusBadge(r)}</td></tr>`).join("") ||
    `<tr><td colspan="11" class="muted">No row matches the filters.</td></tr>`;
  const first = rows.length ? filters.page * PAGE_SIZE + 1 : 0;
  document.getElementById("page-info").textContent =
    `rows ${first}–${filters.page * PAGE_SIZE + shown.length} of ${rows.length} shown (${index.rows.length} in all)`;
  document.getElementById("prev").disabled = filters.page === 0;
  document.getElementById("next").disabled = filters.page >= pages - 1;
}

// A row's token count linking to its token page; a row not yet prepared links there too (prepared on demand).
function tokensCell(index, row) {
  if (row.tokens !== null && row.tokens !== undefined) return `<a href="#/tokens/${row.row}">${num(row.tokens)}</a>`;
  return row.status === "preparing" && index.tokens ? `<a href="#/tokens/${row.row}" title="not prepared yet: its tokens are prepared when opened">…</a>` : "–";
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

// Row lengths as an SVG histogram: 16 bins from 0 to the longest row, the rows per bin on the y axis.
function histogram(values) {
  if (!values.length) return `<p class="muted">No tokens: open the dataset with a tokenizer.</p>`;
  const bins = 16, top = Math.max(...values), width = 340, height = 120, left = 34, base = height + 4;
  const step = Math.max(1, Math.ceil((top + 1) / bins));
  const counts = new Array(bins).fill(0);
  values.forEach((v) => { counts[Math.min(bins - 1, Math.floor(v / step))] += 1; });
  const most = Math.max(...counts), bar = (width - left) / bins;
  const rects = counts.map((c, i) => {
    const h = c ? Math.max(2, (c / most) * (height - 8)) : 0;
    return `<rect x="${left + i * bar + 1}" y="${base - h}" width="${bar - 2}" height="${h}"><title>${num(i * step)}–${num((i + 1) * step - 1)} tokens: ${c} rows</title></rect>`;
  }).join("");
  const tick = (x, label, anchor) => `<text x="${x}" y="${base + 14}" text-anchor="${anchor}">${label}</text>`;
  return `<svg class="hist" viewBox="0 0 ${width} ${base + 30}" role="img" aria-label="histogram of row lengths">
    <line class="axis" x1="${left}" y1="${base}" x2="${width}" y2="${base}"/><line class="axis" x1="${left}" y1="4" x2="${left}" y2="${base}"/>
    <text x="${left - 4}" y="12" text-anchor="end">${num(most)}</text><text x="${left - 4}" y="${base}" text-anchor="end">0</text>
    <text class="axis-title" x="${left - 4}" y="${base / 2 + 4}" text-anchor="end">rows</text>${rects}
    ${tick(left, "0", "start")}${tick(left + (width - left) / 2, num(Math.round((step * bins) / 2)), "middle")}${tick(width, num(step * bins), "end")}
    <text class="axis-title" x="${left + (width - left) / 2}" y="${base + 28}" text-anchor="middle">tokens per row</text></svg>`;
}

// Trained tokens per span kind (the audit of the labels, for the policy), one bar each, with its share.
function kindBars(stats) {
  const byKind = stats.audit?.reasons?.supervised_by_kind || {};
  const entries = Object.entries(byKind).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return `<p class="muted">Nothing trained, or no tokens.</p>`;
  const most = entries[0][1], total = entries.reduce((sum, [, n]) => sum + n, 0);
  return `<div class="bars">${entries.map(([kind, n]) => `
    <div class="bar-row" data-kind="${kind}"><span class="bar-label"><span class="swatch k-${kind}"></span>${KIND_LABELS[kind] || kind}</span>
      <span class="bar-track"><span class="bar k-${kind}" style="width:${Math.max(1, (n / most) * 100)}%"></span></span>
      <span class="bar-n">${num(n)}</span><span class="bar-share">${Math.round((n / total) * 100)}%</span></div>`).join("")}</div>`;
}

// Placeholders the anonymizer left, per kind over all rows (shown only when there are any).
function redactionPanel(index) {
  const totals = {};
  index.rows.forEach((r) => Object.entries(r.redactions || {}).forEach(([kind, n]) => { totals[kind] = (totals[kind] || 0) + n; }));
  const entries = Object.entries(totals).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return "";
  const rows = entries.map(([kind, n]) => `<tr data-kind="${esc(kind)}"><td><span class="ph">${esc(kind)}</span></td><td class="n">${num(n)}</td></tr>`);
  return `<div class="panel" id="redactions"><h3>Redactions (placeholders)</h3><table class="report">${rows.join("")}</table></div>`;
}

function redactedCount(row) {
  const total = Object.values(row.redactions || {}).reduce((sum, n) => sum + n, 0);
  return total ? `<span class="ph" title="${esc(Object.entries(row.redactions).map(([k, n]) => `${k}: ${n}`).join(", "))}">${num(total)}</span>` : "";
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
  const mark = marker(index.placeholder);
  const agents = Object.fromEntries(data.children.filter((c) => c.call).map((c) => [c.call, c]));
  const body = data.messages.map((m, i) => renderMessage(m, i, { results, paired, mark, agents })).filter(Boolean).join("");
  const tokens = data.has_tokens ? `<a class="button" href="#/tokens/${row}">show tokens ›</a>` : "";
  app().innerHTML = `
    <div class="row-head"><h2>Row ${row}</h2>${statusBadge(data.status)}${redactionChips(data.redactions)}${tokens}</div>
    ${family(data)}
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

// Escaped text with each anonymizer placeholder (the pattern teich.privacy writes them with) highlighted.
function marker(pattern) {
  const regex = pattern ? new RegExp(pattern, "g") : null;
  return (text) => {
    if (!regex) return esc(text);
    let out = "", last = 0;
    for (const match of String(text ?? "").matchAll(regex)) {
      const kind = match.groups.secret ? `secret:${match.groups.secret}` : match.groups.personal.toLowerCase();
      out += esc(text.slice(last, match.index)) + `<mark class="ph" data-kind="${esc(kind)}" title="redacted ${esc(kind)}">${esc(match[0])}</mark>`;
      last = match.index + match[0].length;
    }
    return out + esc(String(text ?? "").slice(last));
  };
}

function redactionChips(redactions) {
  const entries = Object.entries(redactions || {});
  if (!entries.length) return "";
  return `<span class="redacted" id="row-redactions">redacted: ${entries.map(([kind, n]) =>
    `<span class="ph" data-kind="${esc(kind)}">${esc(kind)} × ${num(n)}</span>`).join(" ")}</span>`;
}

// The sub-agent links: the row (and call) that started this one, and the rows this one started.
function family(data) {
  const parent = data.parent ? `<div class="family" id="parent-link">↰ sub-agent of <a href="#/row/${data.parent.row}">row ${data.parent.row}</a>${data.parent.call ? ` (call <code>${esc(data.parent.call)}</code>)` : ""}</div>` : "";
  const children = data.children.length ? `<div class="family" id="child-links">sub-agents: ${data.children.map((c) =>
    `<a href="#/row/${c.row}">row ${c.row}${c.agent_type ? ` · ${esc(c.agent_type)}` : ""}</a>`).join(", ")}</div>` : "";
  return parent + children;
}

function renderMessage(m, i, { results, paired, mark, agents }) {
  if (m.role === "tool" && paired.has(m.tool_call_id)) return "";
  const flag = m.train === undefined ? "" : `<span class="badge">train: ${m.train}</span>`;
  const reasoning = m.reasoning_content ? `<details class="reasoning"><summary>reasoning · ${num(m.reasoning_content.length)} characters</summary><pre>${mark(m.reasoning_content)}</pre></details>` : "";
  const text = contentText(m.content);
  const calls = (m.tool_calls || []).map((call) => {
    const result = results[call.id];
    if (result) paired.add(call.id);
    const args = JSON.stringify(call.function.arguments, null, 2);
    const agent = agents[call.id] ? ` <a class="sub-agent" href="#/row/${agents[call.id].row}">↳ sub-agent: row ${agents[call.id].row}</a>` : "";
    return `<div class="call" data-call="${esc(call.id)}"><div class="call-head">⚙ ${esc(call.function.name)}${agent}</div><pre>${mark(args)}</pre>
      ${result ? toolResult(result, mark) : `<div class="muted">no result</div>`}</div>`;
  }).join("");
  const body = m.role === "tool" ? toolResult(m, mark) : (text ? `<pre class="content">${mark(text)}</pre>` : "");
  return `<div class="msg role-${m.role}" data-message="${i}"><div class="msg-head">${m.role}${m.name ? ` · ${esc(m.name)}` : ""} ${flag}</div>${reasoning}${body}${calls}</div>`;
}

function toolResult(m, mark) {
  const error = m.is_error ? `<span class="badge st-error">✖ failed</span>` : "";
  return `<div class="result ${m.is_error ? "is-error" : ""}"><div class="result-head">result ${error}</div><pre>${mark(contentText(m.content))}</pre></div>`;
}

function toolSchemas(tools) {
  if (!tools.length) return "";
  const items = tools.map((tool) => {
    const fn = tool.function || tool;
    return `<details class="tool"><summary><b>${esc(fn.name)}</b> <span class="muted">${esc((fn.description || "").slice(0, 120))}</span></summary><pre>${esc(JSON.stringify(tool, null, 2))}</pre></details>`;
  }).join("");
  return `<section class="tools"><h3>${tools.length} tools offered</h3>${items}</section>`;
}

// The token page (showTokens) is in tokens.js.
