// The market, live: blocks and their events arrive over the node's CometBFT websocket (the last KEEP blocks
// fetched with `block`/`block_results` on connect, then a NewBlock subscription); after each block the state
// the events name (providers, books, clearings, requests, processes) is read from this REST gateway.

const KEEP = 20;
const HISTORY = 60;
const RECONNECT_MS = 2000;

const state = {
  blocks: [], txs: [], works: [], history: new Map(), books: new Map(), providers: [],
  requests: new Map(), processes: new Map(), refreshing: false, again: false,
};

const $ = (id) => document.getElementById(id);
const escape = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const short = (text, n = 10) => (text && text.length > n + 4 ? `${text.slice(0, n)}…${text.slice(-4)}` : text ?? "");
const attributes = (event) => Object.fromEntries((event.attributes || []).map((a) => [a.key, a.value]));
const celsius = (milli) => (Number(milli) / 1000).toFixed(1);

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) {
    const error = new Error(`${path}: ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

async function getOptional(path) {
  try {
    return await getJSON(path);
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

async function computeTxHash(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
}

// --- the websocket --------------------------------------------------------------------------------

class Rpc {
  constructor(url, onBlock, onState) {
    Object.assign(this, { url, onBlock, onState, next: 1, pending: new Map() });
  }

  connect() {
    this.ws = new WebSocket(this.url);
    this.ws.onopen = () => this.start().catch((error) => this.lost(error));
    this.ws.onmessage = (message) => this.receive(JSON.parse(message.data));
    this.ws.onclose = () => this.lost(new Error("closed"));
  }

  lost(error) {
    this.onState("lost", error.message);
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close();
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.connect(), RECONNECT_MS);
  }

  call(method, params = {}) {
    const id = this.next++;
    this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  receive(reply) {
    const waiter = this.pending.get(reply.id);
    if (reply.result?.data?.type === "tendermint/event/NewBlock") {
      const { block, result_finalize_block: results } = reply.result.data.value;
      this.onBlock(block, results.tx_results || [], results.events || []);
    } else if (waiter) {
      this.pending.delete(reply.id);
      reply.error ? waiter.reject(new Error(reply.error.data || reply.error.message)) : waiter.resolve(reply.result);
    }
  }

  async start() {
    const status = await this.call("status");
    $("chain-id").textContent = status.node_info.network;
    const latest = Number(status.sync_info.latest_block_height);
    const known = state.blocks.length ? state.blocks[0].height : 0;
    for (let height = Math.max(1, latest - KEEP + 1, known + 1); height <= latest; height++) {
      const [{ block }, results] = await Promise.all([
        this.call("block", { height: String(height) }), this.call("block_results", { height: String(height) })]);
      await this.onBlock(block, results.txs_results || [], results.finalize_block_events || []);
    }
    await this.call("subscribe", { query: "tm.event='NewBlock'" });
    this.onState("live");
  }
}

// --- what a block says ----------------------------------------------------------------------------

let queue = Promise.resolve();

function onBlock(block, txResults, blockEvents) {
  queue = queue.then(() => processBlock(block, txResults, blockEvents)).catch((error) => console.error(error));
  return queue;
}

async function processBlock(block, txResults, blockEvents) {
  const height = Number(block.header.height);
  if (state.blocks.length && height <= state.blocks[0].height) return;
  const txs = block.data.txs || [];
  const events = [...blockEvents, ...txResults.flatMap((r) => r.events || [])];
  const cleared = events.filter((e) => e.type === "auction_cleared").map(attributes);
  state.blocks.unshift({
    height, time: block.header.time, txs: txs.length, cleared,
    gas: txResults.reduce((sum, r) => sum + Number(r.gas_used || 0), 0),
    proofs: events.filter((e) => e.type === "inference_verified").length,
  });
  state.blocks.length = Math.min(state.blocks.length, KEEP);
  for (let i = txs.length - 1; i >= 0; i--) {
    const result = txResults[i] || {};
    const actions = (result.events || []).filter((e) => e.type === "message").map(attributes)
      .map((a) => a.action).filter(Boolean);
    const code = Number(result.code || 0);
    if (!actions.length && !code) continue;  // no messages: the heat report a proposer opens its block with
    state.txs.unshift({
      hash: await computeTxHash(txs[i]), height, code, log: result.log || "", actions, gas: Number(result.gas_used || 0),
    });
  }
  state.txs.length = Math.min(state.txs.length, KEEP);
  for (const c of cleared) {
    const points = state.history.get(c.work) || [];
    points.push({ height, price: Number(c.price), matched: Number(c.matched_slots), unmatched: null });
    state.history.set(c.work, points.slice(-HISTORY));
  }
  for (const event of events) noteEvent(event.type, attributes(event), height);
  $("height").textContent = height;
  renderBlocks();
  refresh();
}

function noteEvent(type, a, height) {
  if (type === "inference_requested") {
    state.requests.set(a.request_id, { id: a.request_id, model: a.model, reward: a.reward, provers: {}, height });
  } else if (type === "inference_verified" && state.requests.has(a.request_id)) {
    state.requests.get(a.request_id).provers[a.layer] = a.prover;
  } else if (type === "process_started") {
    state.processes.set(a.process, { id: a.process, owner: a.owner, slots: a.slots, max_rent: a.max_rent, escrow: a.escrow });
  } else if (type === "apoptosis" && state.processes.has(a.process)) {
    Object.assign(state.processes.get(a.process), { dead: `apoptosis at ${a.height}: ${a.reason}, tax ${a.tax}` });
  }
}

// --- what the gateway says ------------------------------------------------------------------------

async function refresh() {
  if (state.refreshing) {
    state.again = true;
    return;
  }
  state.refreshing = true;
  try {
    do {
      state.again = false;
      await readState();
    } while (state.again);
  } catch (error) {
    console.error(error);
  } finally {
    state.refreshing = false;
  }
  renderAll();
}

async function readState() {
  const [{ params }, { providers }] = await Promise.all([
    getJSON("/maxwell/market/v1/params"), getJSON("/maxwell/market/v1/providers?pagination.limit=1000")]);
  state.providers = providers;
  state.works = ["process", ...params.models.map((m) => `inference/${m}`)];
  await Promise.all(state.works.map(async (work) => {
    const [book, clearing] = await Promise.all([
      getJSON(`/maxwell/market/v1/book/${work}?pagination.limit=100`), getOptional(`/maxwell/market/v1/clearing/${work}`)]);
    state.books.set(work, { orders: book.orders, clearing: clearing?.clearing });
    const points = state.history.get(work) || [];
    if (points.length && points[points.length - 1].unmatched === null) {
      points[points.length - 1].unmatched = book.orders.reduce((sum, o) => sum + Number(o.remaining), 0);
    }
  }));
  const requests = [...state.requests.values()].slice(-KEEP);
  await Promise.all(requests.filter((r) => !r.ended).map(async (r) => {
    const [request, result] = await Promise.all([
      getOptional(`/maxwell/inference/v1/requests/${r.id}`), getOptional(`/maxwell/inference/v1/results/${r.id}`)]);
    if (request) Object.assign(r, { request: request.request, ended: request.request.ended_height !== "0" });
    if (result) r.result = result.result;
  }));
  await Promise.all([...state.processes.values()].filter((p) => !p.dead).map(async (p) => {
    const answer = await getOptional(`/maxwell/market/v1/processes/${p.id}`);
    if (answer) p.process = answer.process;
    else p.dead = p.dead || "gone";
  }));
}

// --- rendering ------------------------------------------------------------------------------------

function renderAll() {
  renderMarket();
  renderProviders();
  renderRequests();
  renderProcesses();
}

function renderBlocks() {
  $("block-rows").innerHTML = state.blocks.map((b) => `<tr data-height="${b.height}"><td>${b.height}</td>
    <td>${escape(b.time.replace("T", " ").slice(0, 19))}</td><td>${b.txs}</td><td>${b.gas}</td>
    <td>${escape(b.cleared.map((c) => `${c.work} ${c.matched_slots}@${c.price}`).join(", ") || "–")}</td>
    <td>${b.proofs}</td></tr>`).join("");
  $("tx-rows").innerHTML = state.txs.map((t) => `<tr data-hash="${t.hash}"><td class="mono">${short(t.hash, 12)}</td>
    <td>${t.height}</td><td>${escape(t.actions.map((a) => a.split(".").pop()).join(", ") || "–")}</td>
    <td class="${t.code ? "failed" : "ok"}" title="${escape(t.log)}">${t.code ? `code ${t.code}` : "ok"}</td>
    <td>${t.gas}</td></tr>`).join("");
}

function renderChart(points) {
  const width = 600, height = 110, pad = 14;
  if (!points.length) return `<svg class="chart" viewBox="0 0 ${width} ${height}"><text x="8" y="16">no clearing yet</text></svg>`;
  const maxPrice = Math.max(...points.map((p) => p.price), 1);
  const maxSlots = Math.max(...points.map((p) => p.matched + (p.unmatched || 0)), 1);
  const step = (width - 2 * pad) / HISTORY;
  const x = (i) => pad + i * step;
  const bars = points.map((p, i) => {
    const matched = (p.matched / maxSlots) * (height / 2 - pad);
    const unmatched = ((p.unmatched || 0) / maxSlots) * (height / 2 - pad);
    return `<rect class="matched" x="${x(i)}" y="${height - pad - matched}" width="${step * 0.45}" height="${matched}"/>
      <rect class="unmatched" x="${x(i) + step * 0.5}" y="${height - pad - unmatched}" width="${step * 0.45}" height="${unmatched}"/>`;
  }).join("");
  const line = points.map((p, i) => `${x(i) + step / 2},${pad + (1 - p.price / maxPrice) * (height / 2 - pad)}`).join(" ");
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" preserveAspectRatio="none">${bars}
    <polyline class="price" points="${line}"/><text x="4" y="10">price ≤ ${maxPrice}</text>
    <text x="4" y="${height - 2}">slots: matched (green) · unmatched (grey), heights ${points[0].height}–${points[points.length - 1].height}</text></svg>`;
}

function renderMarket() {
  $("works").innerHTML = state.works.map((work) => {
    const { orders = [], clearing } = state.books.get(work) || {};
    const rows = orders.slice(0, 8).map((o) => `<tr><td>${o.id}</td><td class="mono">${short(o.owner)}</td>
      <td>${o.remaining}/${o.slots}</td><td>${o.max_price}</td></tr>`).join("");
    return `<div class="work" data-work="${escape(work)}"><div><h3>${escape(work)}</h3>
      <div>last clearing: ${clearing ? `<b class="clearing-price">${clearing.price}</b> ujoule/slot, ${clearing.matched_slots} slots at ${clearing.height}` : "none yet"}</div>
      <table><thead><tr><th>order</th><th>owner</th><th>open</th><th>max price</th></tr></thead><tbody>${rows || "<tr><td colspan=4>empty book</td></tr>"}</tbody></table>
      </div>${renderChart(state.history.get(work) || [])}</div>`;
  }).join("");
}

function renderProviders() {
  const color = (milli) => `hsl(${Math.max(0, Math.min(240, 240 - ((Number(milli) / 1000 - 20) / 70) * 240))}, 70%, 60%)`;
  const zones = new Map();
  for (const view of state.providers) {
    zones.set(view.provider.zone, [...(zones.get(view.provider.zone) || []), view]);
  }
  $("heatmap").innerHTML = [...zones.entries()].map(([zone, views]) => `<div class="zone" data-zone="${escape(zone)}">
    <span class="zone-name">${escape(zone)}<br>${celsius(views[0].zone_temperature_millicelsius)} °C</span>
    ${views.map((v) => `<div class="cell" style="background:${color(v.temperature_millicelsius)}" title="${escape(v.provider.address)}">
      <b>${celsius(v.temperature_millicelsius)} °C</b><span>${v.withdrawn ? "withdrawn" : `ask ${escape(v.effective_ask)}`}</span></div>`).join("")}
    </div>`).join("") || "no providers";
  $("provider-rows").innerHTML = state.providers.map((v) => `<tr data-provider="${escape(v.provider.address)}">
    <td class="mono">${short(v.provider.address)}</td><td>${escape(v.provider.zone)}</td><td>${celsius(v.temperature_millicelsius)}</td>
    <td>${celsius(v.zone_temperature_millicelsius)}</td><td>${escape(v.provider.ask_price)}</td>
    <td>${v.withdrawn ? "withdrawn" : escape(v.effective_ask)}</td><td>${v.provider.slots_per_block}</td><td>${escape(v.provider.stake)}</td></tr>`).join("");
}

function renderRequests() {
  $("request-rows").innerHTML = [...state.requests.values()].slice(-KEEP).reverse().map((r) => {
    const request = r.request || {};
    const layers = r.result?.layers || [];
    const status = (request.status || "STATUS_PENDING").replace("STATUS_", "").toLowerCase();
    const predicted = (request.end_reason || "").match(/class (\d+)/)?.[1] ?? "–";
    const provers = layers.map((l) => `${l.layer}: ${short(l.prover, 8)} (${l.price})`).join("<br>") || "–";
    return `<tr data-request-id="${escape(r.id)}"><td>${escape(r.id)}</td><td>${escape(r.model)}</td>
      <td class="request-status">${escape(status)}</td><td>${request.proven_layers ?? 0}</td><td class="mono">${provers}</td>
      <td>${escape(r.reward)}</td><td>${escape(request.paid || "0")}</td><td class="predicted-class">${escape(predicted)}</td></tr>`;
  }).join("");
}

function renderProcesses() {
  $("process-rows").innerHTML = [...state.processes.values()].slice(-KEEP).reverse().map((p) => {
    const process = p.process || {};
    return `<tr data-process-id="${escape(p.id)}" class="${p.dead ? "dead" : ""}"><td>${escape(p.id)}</td>
      <td class="mono">${short(p.owner)}</td><td>${escape(p.slots)}</td><td>${escape(process.escrow ?? p.escrow)}</td>
      <td>${escape(p.max_rent)}</td><td>${escape(process.memory_bytes ?? "0")} B</td>
      <td>${process.death_height && process.death_height !== "0" ? escape(process.death_height) : "–"}</td>
      <td>${escape(p.dead || "running")}</td></tr>`;
  }).join("");
}

// --- start ----------------------------------------------------------------------------------------

function onState(kind, detail = "") {
  const element = $("connection");
  element.className = `state-${kind}`;
  element.textContent = kind === "live" ? "live" : `reconnecting (${detail})`;
  document.body.dataset.connection = kind;
}

getJSON("/dashboard/config.json").then((config) => new Rpc(config.websocket, onBlock, onState).connect());
