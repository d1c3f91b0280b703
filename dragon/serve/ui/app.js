// Dragon's dashboard: plain JavaScript over the HTTP API, no build step, no network
// beyond the service itself. Forms come from the task schemas of /openapi.json; task
// cards follow /v2/status_stream; the history (GET /v2/tasks) and usage (GET /v2/usage)
// are read again every few seconds while shown; video.create's definition is checked
// and timed by POST /v2/sxml/check as it is typed; files come from the Storage API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { auth: sessionStorage.getItem("dragon-auth"), schemas: {} };
const IMAGE = /\.(png|jpe?g|gif|webp|avif|bmp)(\?|$)/i;
const VIDEO = /\.(mp4|webm|m4v|mov|ogv)(\?|$)/i;
const AUDIO = /\.(mp3|m4a|ogg|oga|aac|wav|flac|opus)(\?|$)/i;
const HIDDEN = new Set(["task_name", "task_store", "url_callback", "url_errback"]);
const LIVE_MS = 2000;  // how often the history and usage are read again while shown
const PAGE = 50;
const ENDED = new Set(["success", "error"]);

async function api(method, path, body) {
  const options = { method, headers: { Authorization: state.auth } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const errors = (data && data.errors) || [];
    throw new Error(errors.map((e) => `${e.name}: ${e.description}`).join("; ") || `HTTP ${response.status}`);
  }
  return data;
}

// log in and out

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const auth = `${$("credential-kind").value} ${$("secret").value.trim()}`;
  $("login-error").textContent = "";
  try {
    state.auth = auth;
    if (auth.startsWith("secret ")) await api("GET", "/v2/storage/expiration");  // checks the secret
    sessionStorage.setItem("dragon-auth", auth);
    await enter();
  } catch (error) {
    state.auth = null;
    $("login-error").textContent = `Could not log in: ${error.message}`;
  }
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem("dragon-auth");
  location.reload();
});

async function enter() {
  $("login").hidden = true;
  $("nav").hidden = false;
  show("tasks");
  const doc = await (await fetch("/openapi.json")).json();
  const schemas = doc.components.schemas;
  state.components = schemas;
  const select = $("task-name");
  select.innerHTML = "";
  for (const [name, schema] of Object.entries(schemas)) {
    if (!name.startsWith("Task.")) continue;
    state.schemas[schema.title] = schema;
    select.add(new Option(schema.title, schema.title));
  }
  select.value = state.schemas["image.thumb"] ? "image.thumb" : select.options[0].value;
  for (const name of Object.keys(state.schemas)) $("filter-task").add(new Option(name, name));
  renderForm();
}

function show(view) {
  for (const name of ["tasks", "history", "usage", "files"]) $(`${name}-view`).hidden = view !== name;
  clearInterval(state.live);
  if (view === "files") listFiles();
  const refresh = { history: () => loadHistory(false), usage: showUsage }[view];
  if (refresh) {
    refresh();
    state.live = setInterval(refresh, LIVE_MS);
  }
}
for (const view of ["tasks", "history", "usage", "files"]) $(`show-${view}`).addEventListener("click", () => show(view));
$("refresh-files").addEventListener("click", () => listFiles());

// the form of a task type, from its JSON schema

function resolve(schema) {
  if (schema.$ref) return resolve(state.components[schema.$ref.split("/").pop()]);
  const choices = schema.anyOf || schema.oneOf;
  if (choices) return { ...resolve(choices.find((s) => s.type !== "null") || choices[0]), default: schema.default };
  return schema;
}

function renderForm() {
  const schema = state.schemas[$("task-name").value];
  $("task-doc").textContent = schema.description || "";
  $("editing").textContent = "";
  const params = $("params");
  params.innerHTML = "";
  const required = new Set(schema.required || []);
  for (const [name, raw] of Object.entries(schema.properties || {})) {
    if (HIDDEN.has(name)) continue;
    const field = resolve(raw);
    const fallback = raw.default !== undefined ? raw.default : field.default;
    const sxml = schema.title === "video.create" && name === "definition";
    const label = document.createElement("label");
    label.textContent = required.has(name) ? `${name} *` : name;
    let input;
    if (field.enum) {
      input = document.createElement("select");
      for (const value of field.enum) input.add(new Option(String(value), String(value)));
    } else if (field.type === "boolean") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = Boolean(fallback);
    } else if (sxml) {
      input = document.createElement("textarea");
    } else if (field.type === "array" || field.type === "object") {
      input = document.createElement("textarea");
      input.placeholder = field.type === "array" ? '["a", "b"]' : "{}";
    } else {
      input = document.createElement("input");
      input.type = field.type === "integer" || field.type === "number" ? "number" : "text";
      if (field.type === "number") input.step = "any";
    }
    if (fallback !== undefined && fallback !== null && input.type !== "checkbox") {
      input.value = typeof fallback === "object" ? JSON.stringify(fallback) : String(fallback);
    }
    input.id = `param-${name}`;
    input.dataset.name = name;
    input.dataset.kind = field.type || "string";
    input.required = required.has(name);
    label.append(input);
    params.append(label);
    if (sxml) sxmlEditor(label, input);
    else if (field.type === "string" && /(^|_)url$/.test(name)) uploadControl(label, name, (url) => { input.value = url; });
  }
}

// a local file as an input: uploaded to the account's storage, its URL used

async function upload(file) {
  const response = await fetch(`/v2/storage/upload?filename=${encodeURIComponent(file.name)}`, {
    method: "POST", headers: { Authorization: state.auth, "Content-Type": "application/octet-stream" }, body: file,
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(((data && data.errors) || []).map((e) => e.description).join("; ") || `HTTP ${response.status}`);
  return data.url;
}

function uploadControl(anchor, name, use) {
  const picker = document.createElement("input");
  picker.type = "file";
  picker.className = "upload";
  picker.id = `upload-${name}`;
  picker.title = "Upload a local file and use its URL";
  const note = document.createElement("span");
  note.className = "upload-state doc";
  picker.addEventListener("change", async () => {
    if (!picker.files.length) return;
    note.textContent = "uploading...";
    try {
      use(await upload(picker.files[0]));
      note.textContent = `uploaded ${picker.files[0].name}`;
    } catch (error) {
      note.textContent = `upload failed: ${error.message}`;
    }
  });
  anchor.after(picker, note);
}

// video.create's definition: an SXML editor with line numbers, checked as it is typed

function sxmlEditor(label, textarea) {
  const box = document.createElement("div");
  box.className = "sxml-editor";
  box.innerHTML = `<div class="editor"><pre class="gutter" id="sxml-gutter"></pre></div>
    <button type="button" id="sxml-check">Check</button> <span class="doc">Upload a file and insert its URL:</span>
    <div id="sxml-result"><p id="sxml-status"></p><ul id="sxml-errors" class="error"></ul>
      <div class="lengths" id="sxml-lengths"></div>
      <table id="sxml-timing" hidden><thead><tr><th>line</th><th>element</th><th>start (s)</th><th>duration (s)</th></tr></thead>
      <tbody></tbody></table><details><summary>Annotated definition</summary><pre id="sxml-annotated"></pre></details></div>`;
  label.after(box);
  box.querySelector(".editor").append(textarea);
  textarea.spellcheck = false;
  textarea.placeholder = '<movie service="craftsman-1.0">\n  <body>\n    ...\n  </body>\n</movie>';
  const gutter = box.querySelector(".gutter");
  const lengths = {};
  let timer = null;
  const numbers = (bad) => {
    const count = textarea.value.split("\n").length;
    gutter.innerHTML = "";
    for (let line = 1; line <= count; line++) {
      const number = document.createElement("span");
      number.textContent = String(line);
      number.dataset.line = String(line);
      if (bad.has(line)) number.className = "bad";
      gutter.append(number, "\n");
    }
    gutter.scrollTop = textarea.scrollTop;
  };
  const check = async () => {
    if (!textarea.value.trim()) return;
    try {
      showCheck(await api("POST", "/v2/sxml/check", { definition: textarea.value, lengths }));
    } catch (error) {
      $("sxml-status").textContent = error.message;
    }
  };
  const showCheck = (result) => {
    const errors = $("sxml-errors");
    errors.innerHTML = "";
    const timing = $("sxml-timing");
    timing.querySelector("tbody").innerHTML = "";
    $("sxml-annotated").textContent = result.annotated || "";
    numbers(new Set(result.errors.map((e) => e.line)));
    $("sxml-status").textContent = result.valid ? `valid: the movie lasts ${result.duration} s` : "invalid";
    $("sxml-status").dataset.valid = String(result.valid);
    for (const error of result.errors) {
      const item = document.createElement("li");
      item.dataset.line = String(error.line);
      item.textContent = `line ${error.line}: ${error.message}`;
      item.addEventListener("click", () => selectLine(textarea, error.line));
      errors.append(item);
    }
    for (const warning of result.warnings) {
      const item = document.createElement("li");
      item.className = "doc";
      item.textContent = `warning: ${warning}`;
      errors.append(item);
    }
    timing.hidden = !result.valid;
    for (const node of result.timing) {
      const row = timing.querySelector("tbody").insertRow();
      row.dataset.line = String(node.line);
      for (const value of [node.line, `<${node.tag}>`, node.start.toFixed(3), node.duration.toFixed(3)]) {
        row.insertCell().textContent = String(value);
      }
      row.addEventListener("click", () => selectLine(textarea, node.line));
    }
    const sources = $("sxml-lengths");
    sources.innerHTML = "";
    for (const source of result.unknown_lengths) {
      const field = document.createElement("label");
      field.textContent = `Length of ${source} in seconds (unknown until rendering: timed with the default item length): `;
      const input = document.createElement("input");
      input.type = "number";
      input.step = "any";
      input.dataset.source = source;
      input.addEventListener("change", () => { lengths[source] = Number(input.value); check(); });
      field.append(input);
      sources.append(field);
    }
  };
  textarea.addEventListener("input", () => {
    numbers(new Set());
    clearTimeout(timer);
    timer = setTimeout(check, 500);
  });
  textarea.addEventListener("scroll", () => { gutter.scrollTop = textarea.scrollTop; });
  box.querySelector("#sxml-check").addEventListener("click", check);
  uploadControl(box.querySelector(".doc"), "sxml", (url) => {
    const at = textarea.selectionStart;
    textarea.value = textarea.value.slice(0, at) + url + textarea.value.slice(textarea.selectionEnd);
    textarea.dispatchEvent(new Event("input"));
  });
  numbers(new Set());
  state.checkSxml = check;
}

function selectLine(textarea, line) {
  const lines = textarea.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, text) => n + text.length + 1, 0);
  textarea.focus();
  textarea.setSelectionRange(start, start + (lines[line - 1] || "").length);
}

function fillForm(taskName, parameters, key) {
  $("task-name").value = taskName;
  renderForm();
  for (const input of $("params").querySelectorAll("[data-name]")) {
    const value = parameters[input.dataset.name];
    if (value === undefined || value === null) continue;
    if (input.type === "checkbox") input.checked = Boolean(value);
    else input.value = typeof value === "object" ? JSON.stringify(value) : String(value);
    input.dispatchEvent(new Event("input"));
  }
  $("editing").textContent = `A copy of ${key}: change what you need, then Create.`;
}
$("task-name").addEventListener("change", renderForm);

function readForm() {
  const task = { task_name: $("task-name").value };
  for (const input of $("params").querySelectorAll("[data-name]")) {
    const kind = input.dataset.kind;
    if (kind === "boolean") { task[input.dataset.name] = input.checked; continue; }
    if (input.value === "") continue;
    if (kind === "integer" || kind === "number") task[input.dataset.name] = Number(input.value);
    else if (kind === "array" || kind === "object") task[input.dataset.name] = JSON.parse(input.value);
    else task[input.dataset.name] = input.value;
  }
  return task;
}

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("create-error").textContent = "";
  try {
    const definition = readForm();
    const [status] = await api("POST", "/v2/create", { tasks: definition });
    follow(status, definition);
  } catch (error) {
    $("create-error").textContent = error.message;
  }
});

// task cards, kept current by the status stream

function follow(status, definition) {
  const card = document.createElement("article");
  card.className = "task";
  card.id = `task-${status.key}`;
  card.innerHTML = `<header><strong></strong> <code></code> <span class="state"></span></header>
    <progress max="100"></progress><div class="output"></div>`;
  card.querySelector("strong").textContent = definition.task_name;
  card.querySelector("code").textContent = status.key;
  $("task-list").prepend(card);
  update(card, status, definition);
  stream([status.key], (doc) => update(card, doc, definition));
}

async function stream(keys, onStatus) {
  let ended = false;
  for (let attempt = 0; attempt < 20 && !ended; attempt++) {  // reconnects after a dropped stream
    try {
      const response = await fetch("/v2/status_stream", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tasks: keys }),
      });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (!line) continue;
          const data = JSON.parse(line);
          for (const doc of Array.isArray(data) ? data : [data]) {
            onStatus(doc);
            ended = ended || doc.status === "success" || doc.status === "error";
          }
        }
      }
    } catch (error) {
      await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
    }
  }
}

function update(card, status, definition) {
  card.dataset.status = status.status;
  card.querySelector(".state").textContent = status.status;
  const bar = card.querySelector("progress");
  if (typeof status.progress === "number") bar.value = status.progress;
  if (status.status === "success") bar.value = 100;
  const output = card.querySelector(".output");
  if (status.status === "error") {
    output.innerHTML = "<pre class='error'></pre>";
    output.firstChild.textContent = typeof status.error === "string" ? status.error : JSON.stringify(status.error, null, 2);
  } else if (status.status === "success" && !card.dataset.rendered) {
    card.dataset.rendered = "1";
    render(output, status.result, definition);
  }
}

function render(output, result, definition) {
  const values = result && typeof result === "object" && !Array.isArray(result) ? result : { result };
  const rest = {};
  const links = document.createElement("p");
  for (const [name, value] of Object.entries(values)) {
    if (typeof value === "string" && /^https?:\/\//.test(value)) {
      const link = document.createElement("a");  // every output file, whatever its type: a link to open or save
      link.href = value;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = name;
      link.className = "output-link";
      links.append(link, " ");
    }
    if (typeof value === "string" && /^https?:\/\//.test(value) && (IMAGE.test(value) || VIDEO.test(value) || AUDIO.test(value))) {
      const element = document.createElement(IMAGE.test(value) ? "img" : VIDEO.test(value) ? "video" : "audio");
      element.src = value;
      element.className = "output";
      element.dataset.name = name;
      if (element.tagName !== "IMG") element.controls = true;
      output.append(element);
    }
    rest[name] = value;
  }
  if (links.childElementCount) output.append(links);
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(rest, null, 2);
  output.append(pre);
  if (definition.task_name === "audio.beats" && Array.isArray(values.beats)) drawBeats(output, values, definition.url);
}

// audio.beats: the beats drawn on the file's waveform (an audio.waveform task)

async function drawBeats(output, beats, url) {
  const width = 800, height = 120;
  const [created] = await api("POST", "/v2/create", {
    tasks: { task_name: "audio.waveform", url, width, height, format: "png", fill: "#4a6cd4", background: "#ffffff" },
  });
  stream([created.key], (doc) => {
    if (doc.status !== "success") return;
    const image = new Image();
    image.crossOrigin = "anonymous";
    image.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      canvas.className = "beats";
      const g = canvas.getContext("2d");
      g.drawImage(image, 0, 0);
      const duration = doc.result.duration || beats.duration || 1;
      const downbeats = new Set(beats.downbeats || []);
      for (const t of beats.beats) {
        g.strokeStyle = downbeats.has(t) ? "#d42a2a" : "#f0a030";
        g.lineWidth = downbeats.has(t) ? 2 : 1;
        const x = Math.round((t / duration) * width) + 0.5;
        g.beginPath(); g.moveTo(x, 0); g.lineTo(x, height); g.stroke();
      }
      output.prepend(canvas);
    };
    image.src = doc.result.output;
  });
}

// the history: GET /v2/tasks with the filters, read again while shown

function historyQuery(cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if ($("filter-status").value) query.set("status", $("filter-status").value);
  if ($("filter-task").value) query.set("task_name", $("filter-task").value);
  if ($("filter-since").value) query.set("from", new Date(Date.now() - 1000 * Number($("filter-since").value)).toISOString());
  if (cursor) query.set("cursor", cursor);
  return `/v2/tasks?${query}`;
}

state.details = {};
state.history = { rows: new Map(), cursor: null, pages: 1, filters: 0, busy: false };

async function loadHistory(more) {
  const history = state.history;
  if (history.busy) return;  // the next turn reads again
  history.busy = true;
  const filters = history.filters;
  $("history-error").textContent = "";
  try {
    let statuses = [], cursor = more ? history.cursor : null;
    const pages = more ? 1 : history.pages;  // a refresh reads again as many pages as are shown
    for (let page = 0; page < pages; page++) {
      const answer = await api("GET", historyQuery(cursor));
      statuses = statuses.concat(answer.tasks);
      cursor = answer.cursor;
      if (!cursor) break;
    }
    if (filters !== history.filters) return;  // the filters changed meanwhile: this answer is stale
    if (more) history.pages += 1;
    history.cursor = cursor;
    $("history-more").hidden = !cursor;
    await loadDetails(statuses.map((s) => s.key));
    const body = $("history").querySelector("tbody");
    const keep = new Set(statuses.map((s) => s.key));
    if (!more) for (const [key, row] of history.rows) if (!keep.has(key)) { row.remove(); history.rows.delete(key); }
    for (const status of statuses) {
      const row = history.rows.get(status.key) || historyRow(status.key);
      updateRow(row, status);
      body.append(row);  // in the page's order: newest first
    }
  } catch (error) {
    $("history-error").textContent = error.message;
  } finally {
    history.busy = false;
  }
}

async function loadDetails(keys) {
  const missing = keys.filter((key) => !state.details[key]);
  if (!missing.length) return;
  for (const doc of await api("POST", "/v2/status", { tasks: missing, details: true })) state.details[doc.key] = doc.details;
}

function historyRow(key) {
  const row = document.createElement("tr");
  row.dataset.key = key;
  const details = state.details[key] || {};
  for (const name of ["created", "type", "key", "state", "outcome", "actions"]) row.insertCell().className = name;
  row.querySelector(".type").textContent = details.task_name || "";
  row.querySelector(".key").innerHTML = "<code></code>";
  row.querySelector(".key code").textContent = key;
  const actions = row.querySelector(".actions");
  for (const [name, label, act] of [["cancel", "Cancel", cancelTask], ["rerun", "Re-run", rerun], ["edit", "Edit", edit]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = name;
    button.textContent = label;
    button.addEventListener("click", () => act(key).catch((error) => { $("history-error").textContent = error.message; }));
    actions.append(button);
  }
  state.history.rows.set(key, row);
  return row;
}

function updateRow(row, status) {
  row.dataset.status = status.status;
  row.querySelector(".created").textContent = (status.events.queued || "").replace("T", " ").slice(0, 19);
  row.querySelector(".state").textContent = typeof status.progress === "number" && !ENDED.has(status.status)
    ? `${status.status} ${Math.round(status.progress)}%` : status.status;
  const outcome = status.status === "error" ? status.error : status.status === "success" ? status.result : "";
  row.querySelector(".outcome").textContent = typeof outcome === "string" ? outcome : JSON.stringify(outcome);
  row.querySelector("button.cancel").hidden = ENDED.has(status.status);
}

function definitionOf(key) {
  const details = state.details[key];
  const task = { task_name: details.task_name };
  for (const [name, value] of Object.entries(details.parameters || {})) if (value !== null) task[name] = value;
  if (details.task_store && details.task_store.type !== "persistent") task.task_store = details.task_store;
  return task;
}

async function cancelTask(key) {
  await api("POST", "/v2/cancel", { tasks: [key] });
  await loadHistory(false);
}

async function rerun(key) {
  const task = definitionOf(key);
  if (JSON.stringify(task).includes("<redacted>")) throw new Error(`${key} has credentials the service does not show: use Edit`);
  await api("POST", "/v2/create", { tasks: task });
  await loadHistory(false);
}

async function edit(key) {
  const task = definitionOf(key);
  show("tasks");
  fillForm(task.task_name, task, key);
  if (task.task_name === "video.create" && state.checkSxml) state.checkSxml();
}

for (const id of ["filter-status", "filter-task", "filter-since"]) {
  $(id).addEventListener("change", () => {
    state.history.pages = 1;
    state.history.filters += 1;
    state.history.busy = false;  // a read of the old filters is left to be discarded
    loadHistory(false);
  });
}
$("history-more").addEventListener("click", () => loadHistory(true));

// account usage: running and queued tasks, stored bytes

async function showUsage() {
  $("usage-error").textContent = "";
  try {
    const usage = await api("GET", "/v2/usage");
    $("usage-running").textContent = String(usage.running);
    $("usage-queued").textContent = String(usage.queued);
    $("usage-stored").textContent = state.auth.startsWith("secret ")
      ? String((await api("GET", "/v2/storage/files/?recursive=true")).usage) : "(log in with the secret to see it)";
  } catch (error) {
    $("usage-error").textContent = error.message;
  }
}

// stored files

async function listFiles() {
  $("files-error").textContent = "";
  const body = $("files").querySelector("tbody");
  try {
    const listing = await api("GET", "/v2/storage/files/?recursive=true");
    body.innerHTML = "";
    $("usage").textContent = `${listing.usage} bytes in use`;
    for (const file of listing.files) {
      const row = body.insertRow();
      row.dataset.name = file.name;
      row.insertCell().textContent = file.name;
      row.insertCell().textContent = String(file.size);
      row.insertCell().textContent = file.last_modified;
      const button = document.createElement("button");
      button.textContent = "Delete";
      button.className = "delete";
      button.addEventListener("click", async () => {
        try {
          await api("DELETE", `/v2/storage/files/${file.name.split("/").map(encodeURIComponent).join("/")}`, {});
          await listFiles();
        } catch (error) {
          $("files-error").textContent = error.message;
        }
      });
      row.insertCell().append(button);
    }
  } catch (error) {
    $("files-error").textContent = error.message;
  }
}

if (state.auth) enter().catch(() => sessionStorage.removeItem("dragon-auth"));
