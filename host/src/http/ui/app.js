// The page of GET /ui: plain JavaScript, no dependencies. Everything it shows
// comes from the emulator's own routes: GET / (blocks and states), GET
// /graph?format=svg (the chain), GET /events (live updates), GET
// /openapi.json (route forms), GET /<block>/diagram?format=svg, GET
// /<block>/buffer, and the control routes (/start, /stop, /pulse, /signal,
// /inject).
"use strict";

const ui = {
  id: "",
  blocks: new Map(), // id -> {type, state, status, events: []}
  order: [],
  selected: null,
  openapi: null,
  missed: 0,
  bufferTimer: null,
  diagramTimer: null,
};
// Read by the browser test and by people: when the chain was drawn.
window.uiTimings = { chainDrawnMs: null, blocksListedMs: null };

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
const COLOURS = { normal: "#d9f2d9", fault: "#f4a6a6", hung: "#f6cf7a" };
const MAX_EVENTS = 50;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function call(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  return { status: response.status, text, json };
}

function showReply(target, method, path, reply) {
  const body = reply.json !== null ? JSON.stringify(reply.json, null, 1) : reply.text;
  target.textContent = `${method} ${path} → ${reply.status}\n${body}`;
  target.dataset.status = String(reply.status);
}

// ---- blocks: the table and the chain's nodes ----

function renderBlockTable() {
  const body = $("#blocks tbody");
  body.replaceChildren();
  for (const id of ui.order) {
    const block = ui.blocks.get(id);
    const row = element("tr", { "data-block-row": id, onclick: () => select(id) },
      element("td", { text: id }),
      element("td", { text: block.type }),
      element("td", { class: "state", text: block.state }));
    body.append(row);
    paintBlock(id);
  }
  $("#block-count").textContent = String(ui.order.length);
  const inject = $("#inject-block");
  inject.replaceChildren(...ui.order.map((id) => element("option", { value: id, text: id })));
}

function paintBlock(id) {
  const block = ui.blocks.get(id);
  if (!block) return;
  const row = $(`tr[data-block-row="${CSS.escape(id)}"]`);
  if (row) {
    row.className = block.status + (ui.selected === id ? " selected" : "");
    $(".state", row).textContent = block.state;
    row.dataset.status = block.status;
    row.dataset.state = block.state;
  }
  const node = $(`#chain g.node[data-block="${CSS.escape(id)}"]`);
  if (node) {
    node.dataset.state = block.state;
    node.dataset.status = block.status;
    node.classList.toggle("selected", ui.selected === id);
    for (const shape of $$("rect, ellipse", node)) shape.setAttribute("fill", COLOURS[block.status]);
    // The label follows its shape; its last line is the state.
    const label = node.nextElementSibling;
    if (label && label.tagName.toLowerCase() === "text") {
      const lines = $$("tspan", label);
      if (lines.length >= 3) lines[lines.length - 1].textContent = block.state;
    }
  }
  if (ui.selected === id) $("#detail-state").textContent = block.state;
}

async function loadBlocks() {
  const reply = await call("GET", "/");
  if (reply.status !== 200) throw new Error(`GET / answered ${reply.status}`);
  ui.id = reply.json.id;
  $("#emulator-id").textContent = ui.id;
  $("#run-state").textContent = reply.json.current_state;
  $("#pulses").textContent = String(reply.json.pulses);
  ui.order = reply.json.blocks.map((b) => b.id);
  for (const b of reply.json.blocks) {
    const known = ui.blocks.get(b.id);
    ui.blocks.set(b.id, {
      type: b.type,
      state: b.current_state,
      status: b.hung ? "hung" : (b.current_state === "FAULT" ? "fault" : "normal"),
      events: known ? known.events : [],
    });
  }
  renderBlockTable();
  window.uiTimings.blocksListedMs = performance.now();
}

function zoom() {
  const svg = $("#chain svg");
  if (!svg) return;
  const choice = $("#zoom").value;
  const width = Number(svg.dataset.width);
  svg.style.width = choice === "fit" ? "100%" : `${width * Number(choice)}px`;
  svg.style.height = "auto";
}

async function loadChain() {
  const reply = await call("GET", "/graph?format=svg");
  const chain = $("#chain");
  if (reply.status !== 200) {
    chain.textContent = `GET /graph?format=svg answered ${reply.status}: ${reply.text}`;
    return;
  }
  chain.innerHTML = reply.text.replace(/^<\?xml[^>]*>/, "");
  const svg = $("svg", chain);
  svg.dataset.width = svg.getAttribute("width");
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  zoom();
  for (const node of $$("g.node[data-block]", chain)) {
    node.addEventListener("click", () => select(node.dataset.block));
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = node.dataset.block;
    node.append(title);
  }
  for (const id of ui.order) paintBlock(id);
  window.uiTimings.chainDrawnMs = performance.now();
  document.body.dataset.chain = "drawn";
}

// ---- the selected block ----

async function select(id) {
  if (!ui.blocks.has(id)) return;
  const previous = ui.selected;
  ui.selected = id;
  if (previous) paintBlock(previous);
  paintBlock(id);
  const block = ui.blocks.get(id);
  $("#detail").hidden = false;
  $("#detail-id").textContent = id;
  $("#detail-type").textContent = `(${block.type})`;
  $("#detail-state").textContent = block.state;
  renderBlockEvents();
  renderRoutes(id);
  await Promise.all([loadDiagram(), loadBuffer()]);
  clearInterval(ui.bufferTimer);
  ui.bufferTimer = setInterval(loadBuffer, 1000);
}

async function loadDiagram() {
  const id = ui.selected;
  if (!id) return;
  const path = `/${encodeURIComponent(id)}/diagram?format=svg`;
  const reply = await call("GET", path);
  if (ui.selected !== id) return;
  const target = $("#diagram");
  if (reply.status === 200) {
    target.innerHTML = reply.text.replace(/^<\?xml[^>]*>/, "");
    const svg = $("svg", target);
    svg.style.maxWidth = "100%";
    svg.style.height = "auto";
    target.dataset.current = ($("g.node[data-current]", target) || { dataset: {} }).dataset.state || "";
  } else {
    target.textContent = `${path} answered ${reply.status}: ${reply.text}`;
  }
}

async function loadBuffer() {
  const id = ui.selected;
  if (!id) return;
  const reply = await call("GET", `/${encodeURIComponent(id)}/buffer`);
  if (ui.selected !== id) return;
  const target = $("#buffer");
  if (reply.status !== 200) {
    target.textContent = reply.json && reply.json.error ? reply.json.error : `answered ${reply.status}`;
    target.dataset.live = "false";
    return;
  }
  const rows = Object.entries(reply.json.params || {}).map(([name, value]) =>
    element("tr", { "data-param": name },
      element("td", { text: name }),
      element("td", { text: JSON.stringify(value) })));
  const where = reply.json.shared_memory ? ` in ${reply.json.shared_memory}` : " (process memory)";
  target.replaceChildren(element("div", { text: `type ${reply.json.type}${where}, read ${new Date().toLocaleTimeString()}` }),
    element("table", {}, ...rows));
  target.dataset.live = "true";
}

function exampleOf(schema) {
  if (!schema || typeof schema !== "object") return {};
  if (schema.default !== undefined) return schema.default;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  switch (schema.type) {
    case "boolean": return false;
    case "integer": case "number": return schema.minimum !== undefined ? Math.max(schema.minimum, 0) : 0;
    case "string": return "";
    case "array": return Array.from({ length: schema.minItems || 0 }, () => exampleOf(schema.items));
    case "object": {
      const out = {};
      for (const name of schema.required || []) out[name] = exampleOf((schema.properties || {})[name]);
      return out;
    }
    default: return {};
  }
}

function renderRoutes(id) {
  const target = $("#routes");
  target.replaceChildren();
  if (!ui.openapi) {
    target.textContent = "loading /openapi.json…";
    return;
  }
  const prefix = `/${id}/`;
  for (const [path, operations] of Object.entries(ui.openapi.paths)) {
    if (!path.startsWith(prefix)) continue;
    for (const [method, operation] of Object.entries(operations)) {
      target.append(routeForm(method.toUpperCase(), path, operation));
    }
  }
}

function routeForm(method, path, operation) {
  const form = element("form", { class: "route", "data-route": `${method} ${path}` });
  form.append(element("div", {},
    element("span", { class: "method", text: method }),
    element("code", { text: path }),
    element("div", { class: "summary", text: operation.summary || "" })));
  const inputs = [];
  for (const parameter of operation.parameters || []) {
    const schema = parameter.schema || {};
    const input = schema.type === "boolean"
      ? element("input", { type: "checkbox" })
      : element("input", { type: "text", placeholder: schema.type || "value" });
    if (schema.default !== undefined) {
      if (schema.type === "boolean") input.checked = schema.default;
      else input.value = String(schema.default);
    }
    input.dataset.name = parameter.name;
    input.dataset.in = parameter.in;
    inputs.push(input);
    form.append(element("label", {}, `${parameter.name} (${parameter.in}${parameter.required ? ", required" : ""}) `, input));
  }
  let bodyInput = null;
  const body = operation.requestBody;
  if (body) {
    const schema = ((body.content || {})["application/json"] || {}).schema || {};
    bodyInput = element("textarea", { rows: "3", name: "body" });
    bodyInput.value = JSON.stringify(exampleOf(schema));
    form.append(element("label", {}, `body (JSON${body.required ? ", required" : ""})`, bodyInput));
    form.append(element("details", {}, element("summary", { text: "schema" }),
      element("pre", { text: JSON.stringify(schema, null, 1) })));
  }
  const reply = element("pre", { class: "reply" });
  form.append(element("button", { type: "submit", text: "Send" }), reply);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    for (const input of inputs) {
      const value = input.type === "checkbox" ? String(input.checked) : input.value;
      if (input.dataset.in === "path") url = url.replace(`{${input.dataset.name}}`, encodeURIComponent(value));
      else if (value !== "") query.set(input.dataset.name, value);
    }
    const search = query.toString();
    if (search) url += `?${search}`;
    reply.textContent = "…";
    try {
      const answer = await call(method, url, bodyInput ? bodyInput.value : undefined);
      showReply(reply, method, url, answer);
    } catch (error) {
      reply.textContent = `${method} ${url} failed: ${error}`;
    }
  });
  return form;
}

// ---- events ----

function describe(event) {
  const data = event.data;
  switch (event.kind) {
    case "state": case "recovery": return `${data.from} → ${data.to}${data.trigger ? ` (${data.trigger})` : ""}`;
    case "fault": case "hang": return data.reason;
    case "injection": return `${data.subtype} ${data.severity} ${JSON.stringify(data.value)}`;
    case "signal": return JSON.stringify(data.values);
    case "plugin_swapped": return `${data.block_type} now from ${data.library}`;
    default: return JSON.stringify(data);
  }
}

function logEvent(kind, data) {
  const time = new Date(data.time_ms || Date.now()).toLocaleTimeString();
  const line = element("li", { "data-kind": kind, text: `${time} ${kind} ${data.block || ""} ${describe({ kind, data })}` });
  const list = $("#events");
  list.prepend(line);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  if (data.block && ui.blocks.has(data.block)) {
    const events = ui.blocks.get(data.block).events;
    events.unshift(line.textContent);
    events.length = Math.min(events.length, 20);
    if (ui.selected === data.block) renderBlockEvents();
  }
}

function renderBlockEvents() {
  const block = ui.blocks.get(ui.selected);
  $("#block-events").replaceChildren(...block.events.map((text) => element("li", { text })));
}

function onBlockEvent(kind, data) {
  const block = ui.blocks.get(data.block);
  if (!block) return;
  if (kind === "state" || kind === "recovery") {
    block.state = data.to;
    if (block.status !== "hung") block.status = data.to === "FAULT" ? "fault" : "normal";
  } else if (kind === "fault") {
    if (block.status !== "hung") block.status = "fault";
  } else if (kind === "hang") {
    block.status = "hung";
  }
  paintBlock(data.block);
  if (ui.selected === data.block && (kind === "state" || kind === "recovery")) {
    clearTimeout(ui.diagramTimer);
    ui.diagramTimer = setTimeout(loadDiagram, 100);
  }
}

function connectEvents() {
  const source = new EventSource("/events");
  const stream = $("#stream");
  source.addEventListener("open", () => { stream.textContent = "live"; });
  source.addEventListener("error", () => { stream.textContent = "reconnecting"; });
  source.addEventListener("subscribed", () => {
    stream.textContent = "live";
    document.body.dataset.events = "subscribed";
  });
  for (const kind of ["state", "fault", "hang", "recovery", "injection", "plugin_swapped"]) {
    source.addEventListener(kind, (message) => {
      const data = JSON.parse(message.data);
      onBlockEvent(kind, data);
      logEvent(kind, data);
    });
  }
  source.addEventListener("signal", (message) => {
    const data = JSON.parse(message.data);
    if (data.values && data.values.packet_rate !== undefined && document.activeElement !== $("#packet-rate")) {
      $("#packet-rate").value = data.values.packet_rate;
    }
    logEvent("signal", data);
  });
  source.addEventListener("summary", (message) => {
    const data = JSON.parse(message.data);
    $("#pulses").textContent = String(data.pulses);
    $("#rate").textContent = String(data.pulses_per_second);
    $("#run-state").textContent = data.run_state;
  });
  source.addEventListener("missed", (message) => {
    const data = JSON.parse(message.data);
    ui.missed += data.missed;
    $("#missed").textContent = String(ui.missed);
    $("#missed-box").hidden = false;
    const line = element("li", { class: "missed", text: `missed ${data.missed} events; states reloaded` });
    $("#events").prepend(line);
    // What was missed may include state changes: read the states again.
    loadBlocks().catch(() => {});
  });
}

// ---- controls ----

function wireControls() {
  const reply = $("#control-reply");
  const control = async (method, path, body) => {
    try {
      const answer = await call(method, path, body);
      showReply(reply, method, path, answer);
      const state = await call("GET", "/state");
      if (state.json) $("#run-state").textContent = state.json.current_state;
      return answer;
    } catch (error) {
      reply.textContent = `${method} ${path} failed: ${error}`;
      return null;
    }
  };
  $("#start").addEventListener("click", () => control("POST", "/start"));
  $("#stop").addEventListener("click", () => control("POST", "/stop"));
  $("#pulse").addEventListener("click", async () => {
    const answer = await control("POST", `/pulse?count=${encodeURIComponent($("#pulse-count").value)}`);
    if (answer && answer.json && answer.json.total_pulses !== undefined) $("#pulses").textContent = String(answer.json.total_pulses);
  });
  $("#set-rate").addEventListener("click", () => {
    const rate = Number($("#packet-rate").value);
    control("PUT", "/signal", { packet_rate: rate });
  });
  $("#zoom").addEventListener("change", zoom);
  $("#inject").addEventListener("submit", async (event) => {
    event.preventDefault();
    const target = $("#inject-reply");
    let value;
    try {
      value = JSON.parse($("#inject-value").value);
    } catch (error) {
      target.textContent = `the value is not JSON: ${error}`;
      return;
    }
    const body = {
      injector_event_groups: [{
        bitstream_emulator_id: ui.id,
        ip_block_emulator_id: $("#inject-block").value,
        events: [{ severity: $("#inject-severity").value, value, offset: Number($("#inject-offset").value) }],
      }],
    };
    showReply(target, "POST", "/inject", await call("POST", "/inject", body));
  });
}

async function main() {
  wireControls();
  // Subscribe before reading the states, so no change falls in between.
  connectEvents();
  try {
    await loadBlocks();
    await loadChain();
    const [openapi, signal] = await Promise.all([call("GET", "/openapi.json"), call("GET", "/signal")]);
    ui.openapi = openapi.json;
    if (signal.json && signal.json.packet_rate !== undefined) $("#packet-rate").value = signal.json.packet_rate;
    if (ui.selected) renderRoutes(ui.selected);
    document.body.dataset.ready = "true";
  } catch (error) {
    $("#chain").textContent = `the page could not load: ${error}`;
  }
}

main();
