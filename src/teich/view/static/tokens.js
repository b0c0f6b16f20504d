// teich view: the token page (loaded after app.js, whose helpers it uses).
// A long row is drawn in chunks that end at a line break: the first screenful at once, the rest in
// short batches between frames, so the page paints in well under a second at 30k tokens. Chunks are
// `content-visibility: auto`, so the browser lays out only those on screen. Text in a chunk not yet
// drawn cannot be found with the browser's find until it is (a second or two on a long row).
"use strict";

const CHUNK_TOKENS = 400; // a chunk ends at the first line break after this many tokens...
const CHUNK_MAX = 1600; // ...or here, where a line has none
const FIRST_TOKENS = 2000; // drawn before the first paint
const BATCH_MS = 12; // drawing time per frame for the rest
// A token's text as HTML: a carriage return as a reference, which the HTML parser keeps (a raw one it turns into \n).
const tokenHtml = (piece) => esc(piece).replace(/\r/g, "&#13;");

// A row's token data, asked for once: a token page opened directly asks for it as this script loads,
// alongside the dataset's index rather than after it.
const tokenLoads = {};
function loadTokens(row) {
  tokenLoads[row] = tokenLoads[row] || load(`tokens-${row}`).catch((error) => { delete tokenLoads[row]; throw error; });
  return tokenLoads[row];
}
const [, openedRow] = location.hash.match(/^#\/tokens\/(\d+)/) || [];
if (openedRow !== undefined) loadTokens(Number(openedRow)).catch(() => {}); // showTokens reports a failure

async function showTokens(index, row) {
  const data = await loadTokens(row);
  performance.mark("teich:tokens-data");
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
    <div id="tokens" class="tokens"></div>`;
  const container = (data.container = document.getElementById("tokens"));
  container.addEventListener("mouseover", (event) => showInfo(index, data, event.target));
  const update = () => relabel(index, data, row).catch((error) => {
    document.getElementById("trained-count").textContent = error.message;
  });
  app().querySelectorAll(".toggles input").forEach((box) => box.addEventListener("change", update));
  document.getElementById("next-trained").onclick = () => nextTrained(container);
  data.shown = data.trained;
  data.special = new Set(data.special);
  data.chunks = chunkStarts(data.pieces);
  data.drawn = 0;
  drawChunks(container, data, index.kinds, FIRST_TOKENS);
  applyLabels(data, index, data.trained, currentQuery());
  performance.mark("teich:tokens-shown");
  drawRest(container, data, index.kinds);
}

// The first token of each chunk, and the token count as the last entry.
function chunkStarts(pieces) {
  const starts = [0];
  for (let i = 0; i < pieces.length; i++) {
    const size = i + 1 - starts[starts.length - 1];
    if ((size >= CHUNK_TOKENS && pieces[i].endsWith("\n")) || size >= CHUNK_MAX) starts.push(i + 1);
  }
  if (starts[starts.length - 1] !== pieces.length) starts.push(pieces.length);
  return starts;
}

// Append whole chunks until at least `tokens` more tokens are drawn (or `deadline` passes); true when all are.
function drawChunks(container, data, kinds, tokens, deadline = Infinity) {
  const last = data.chunks.length - 1;
  const until = data.chunks[data.drawn] + tokens;
  let html = "";
  while (data.drawn < last && data.chunks[data.drawn] < until && performance.now() < deadline) {
    html += chunkHtml(data, kinds, data.chunks[data.drawn], data.chunks[data.drawn + 1]);
    data.drawn += 1;
  }
  container.insertAdjacentHTML("beforeend", html);
  return data.drawn === last;
}

function drawRest(container, data, kinds) {
  const step = () => {
    if (!container.isConnected) return; // the page was left
    if (drawChunks(container, data, kinds, Infinity, performance.now() + BATCH_MS)) {
      container.dataset.drawn = data.ids.length;
      performance.mark("teich:tokens-drawn");
    } else {
      requestAnimationFrame(step);
    }
  };
  requestAnimationFrame(step);
}

// One chunk: a block whose estimated height (its line breaks, and a wrap each ~160 characters) stands
// in for it until the browser lays it out.
function chunkHtml(data, kinds, start, end) {
  let html = "";
  let lines = 1;
  let characters = 0;
  for (let i = start; i < end; i++) {
    const piece = data.pieces[i];
    characters += piece.length;
    for (const c of piece) if (c === "\n") lines += 1;
    const trained = data.shown[i] === "1" ? " tr" : "";
    html += `<span class="k-${kinds[data.kinds[i]]}${data.special.has(i) ? " sp" : ""}${trained}">${tokenHtml(piece)}</span>`;
  }
  const height = (lines + Math.floor(characters / 160)) * 22;
  return `<div class="chunk" data-start="${start}" style="contain-intrinsic-size:auto ${height}px">${html}</div>`;
}

// The token under the pointer: its number is its chunk's start plus its place in the chunk.
function tokenIndex(span) {
  const chunk = span.parentElement;
  if (!chunk || !chunk.classList.contains("chunk")) return -1;
  return Number(chunk.dataset.start) + Array.prototype.indexOf.call(chunk.children, span);
}

function showInfo(index, data, span) {
  const i = tokenIndex(span);
  if (i < 0) return;
  const kind = index.kinds[data.kinds[i]];
  document.getElementById("token-info").textContent =
    `token ${i} · id ${data.ids[i]} · ${KIND_LABELS[kind]} · ${data.shown[i] === "1" ? "trained" : "masked"} · ${JSON.stringify(data.pieces[i])}`;
}

// Scroll to the first drawn trained token below the top of the window.
function nextTrained(container) {
  const next = [...container.querySelectorAll("span.tr")].find((span) => span.getBoundingClientRect().top > 80);
  if (next) next.scrollIntoView({ block: "start" });
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
  if (query === currentQuery() && data.container.isConnected) applyLabels(data, index, trained, query);
}

// Labels of the checked flags from the exported per-flag bits (computed in Python): the union of the
// flags' bits, and bit 7 for messages trained whatever the flags; then the dataset's token cap.
function staticLabels(index, data) {
  let mask = 128;
  app().querySelectorAll(".toggles input").forEach((box, bit) => { if (box.checked) mask |= 1 << bit; });
  let left = index.policy.max_supervised_tokens ?? Infinity;
  return data.bits.map((bits) => ((bits & mask) && left-- > 0 ? "1" : "0")).join("");
}

// Show `trained` (one "0"/"1" per token): restyle the drawn tokens that change (chunks drawn later
// use it as they are drawn) and count the tokens and trained tokens per kind.
function applyLabels(data, index, trained, query) {
  const chunks = data.container.children;
  const drawnEnd = data.chunks[data.drawn];
  const counts = {};
  let total = 0;
  let chunk = 0;
  for (let i = 0; i < data.ids.length; i++) {
    const on = trained[i] === "1";
    if (i < drawnEnd && on !== (data.shown[i] === "1")) {
      while (data.chunks[chunk + 1] <= i) chunk += 1;
      chunks[chunk].children[i - data.chunks[chunk]].classList.toggle("tr", on);
    }
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
