// Dragon's dashboard: plain JavaScript over the HTTP API, no build step, no network
// beyond the service itself. Forms come from the task schemas of /openapi.json; task
// cards follow /v2/status_stream; files come from the Storage API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { auth: sessionStorage.getItem("dragon-auth"), schemas: {} };
const IMAGE = /\.(png|jpe?g|gif|webp|avif|bmp)(\?|$)/i;
const VIDEO = /\.(mp4|webm|m4v|mov|ogv)(\?|$)/i;
const AUDIO = /\.(mp3|m4a|ogg|oga|aac|wav|flac|opus)(\?|$)/i;
const HIDDEN = new Set(["task_name", "task_store", "url_callback", "url_errback"]);

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
  renderForm();
}

function show(view) {
  $("tasks-view").hidden = view !== "tasks";
  $("files-view").hidden = view !== "files";
  if (view === "files") listFiles();
}
$("show-tasks").addEventListener("click", () => show("tasks"));
$("show-files").addEventListener("click", () => show("files"));
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
  const params = $("params");
  params.innerHTML = "";
  const required = new Set(schema.required || []);
  for (const [name, raw] of Object.entries(schema.properties || {})) {
    if (HIDDEN.has(name)) continue;
    const field = resolve(raw);
    const fallback = raw.default !== undefined ? raw.default : field.default;
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
  }
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
  for (const [name, value] of Object.entries(values)) {
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
