// JupyCell live view: follows GET /kernels/{id}/events and renders the kernel's notebook, read-only.
//
// Everything a kernel sends is untrusted. Text (streams, tracebacks, text/plain) goes through ansi_up, which
// escapes HTML; images are shown only as data:/blob: URLs in <img> (no script runs in an image); text/html is
// sanitised by DOMPurify and then shown in an <iframe sandbox=""> (no scripts, opaque origin: no access to this
// page, its storage or the API). The page's Content-Security-Policy allows scripts from the gateway only.
// Long outputs are cut to their first and last lines, with a link to the full text.
import { AnsiUp } from "/static/vendor/ansi_up/ansi_up.js";
import DOMPurify from "/static/vendor/dompurify/purify.es.mjs";
import hljs from "/static/vendor/highlightjs/core.min.js";
import python from "/static/vendor/highlightjs/python.min.js";

hljs.registerLanguage("python", python);

const MAX_LINES = 400; // a stream longer than this shows its head and tail only
const HEAD_LINES = 150;
const TAIL_LINES = 200;
const MAX_ITEMS = 200; // outputs per cell rendered (head and tail), the rest behind a note
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];

const kernelId = (location.pathname.match(/^\/kernels\/(\d+)\/view$/) || [])[1];
// A view link carries its token in the fragment: browsers never send it to the server, so no log records it.
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const ansi = new AnsiUp();

const view = { kernel: null, cells: new Map(), running: null };
const elements = new Map(); // cell number -> {root, prompt, meta, code, outputs, shownCode, blobs}
const dirty = new Set();
let frame = 0;

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- formatting --------------------------------------------------------------------------------------------

function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  return `${value.toFixed(value < 10 ? 2 : 1)} s`;
}

function mebibytes(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

const ANSI_CODES = /\x1b\[[0-9;?]*[A-Za-z]/g;

function joined(text) {
  return Array.isArray(text) ? text.join("") : String(text ?? "");
}

// --- outputs -----------------------------------------------------------------------------------------------

function mergeStreams(outputs) {
  const merged = [];
  for (const output of outputs) {
    const last = merged[merged.length - 1];
    if (output.output_type === "stream" && last && last.output_type === "stream" && last.name === output.name) {
      merged[merged.length - 1] = { ...last, text: joined(last.text) + joined(output.text) };
    } else {
      merged.push(output);
    }
  }
  return merged;
}

function fullTextLink(text, blobs, label) {
  const url = URL.createObjectURL(new Blob([text.replace(ANSI_CODES, "")], { type: "text/plain;charset=utf-8" }));
  blobs.push(url);
  const link = el("a", null, label);
  link.href = url;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  return link;
}

// Coloured text, cut to head and tail past MAX_LINES.
function ansiBlock(text, className, blobs) {
  const box = el("div", className);
  const lines = text.split("\n");
  const pre = (part) => {
    const node = el("pre");
    node.innerHTML = ansi.ansi_to_html(part); // ansi_up escapes <, >, & and quotes
    return node;
  };
  if (lines.length <= MAX_LINES) {
    box.append(pre(text));
    return box;
  }
  const hidden = lines.length - HEAD_LINES - TAIL_LINES;
  const count = lines.length - (lines[lines.length - 1] === "" ? 1 : 0);
  const note = el("p", "elided", `… ${hidden} lines not shown … `);
  note.append(fullTextLink(text, blobs, `full output (${count} lines)`));
  box.append(pre(lines.slice(0, HEAD_LINES).join("\n")), note, pre(lines.slice(-TAIL_LINES).join("\n")));
  return box;
}

function imageOutput(type, data) {
  const box = el("div", "out-image");
  const img = el("img");
  img.alt = type;
  if (type === "image/svg+xml") {
    img.src = URL.createObjectURL(new Blob([joined(data)], { type })); // as an image an SVG runs no script
  } else {
    const base64 = joined(data).replace(/\s/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) return ansiBlock(`[${type} that is not base64]`, "out-text", []);
    img.src = `data:${type};base64,${base64}`;
  }
  box.append(img);
  return box;
}

function htmlOutput(html) {
  const box = el("div", "out-html");
  const frameEl = el("iframe");
  frameEl.setAttribute("sandbox", ""); // no scripts, no forms, no popups, opaque origin
  frameEl.setAttribute("referrerpolicy", "no-referrer");
  frameEl.setAttribute("loading", "lazy");
  frameEl.title = "HTML output (inert)";
  const clean = DOMPurify.sanitize(html, { FORBID_TAGS: ["form", "input", "button", "textarea", "select"] });
  frameEl.srcdoc = `<!doctype html><meta charset="utf-8"><style>body{font-family:system-ui,sans-serif;margin:.4em;font-size:14px}table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:2px 6px}</style>${clean}`;
  // Scripts cannot run inside to report the height: estimate it from the markup, let the reader resize.
  const blocks = (clean.match(/<(tr|br|p|li|h\d|pre|hr)\b/gi) || []).length;
  const rows = blocks || clean.split("\n").length;
  frameEl.style.height = `${Math.max(48, Math.min(480, 24 + rows * 22))}px`;
  box.append(frameEl);
  return box;
}

function richOutput(data, blobs) {
  for (const type of IMAGE_TYPES) if (type in data) return imageOutput(type, data[type]);
  if ("image/svg+xml" in data) return imageOutput("image/svg+xml", data["image/svg+xml"]);
  if ("text/html" in data) return htmlOutput(joined(data["text/html"]));
  if ("application/json" in data) return ansiBlock(JSON.stringify(data["application/json"], null, 2), "out-text", blobs);
  for (const type of ["text/markdown", "text/latex", "text/plain"]) {
    if (type in data) return ansiBlock(joined(data[type]), "out-text", blobs);
  }
  return ansiBlock(`[output of type ${Object.keys(data).join(", ")}]`, "out-text", blobs);
}

function outputNode(output, blobs) {
  switch (output.output_type) {
    case "stream":
      return ansiBlock(joined(output.text), `out-stream ${output.name === "stderr" ? "stderr" : "stdout"}`, blobs);
    case "error": {
      const trace = (output.traceback || []).join("\n") || `${output.ename}: ${output.evalue}`;
      return ansiBlock(trace, "out-error", blobs);
    }
    case "execute_result":
    case "display_data":
      return richOutput(output.data || {}, blobs);
    default:
      return ansiBlock(`[${output.output_type} output]`, "out-text", blobs);
  }
}

function renderOutputs(box, outputs, blobs) {
  const merged = mergeStreams(outputs);
  const nodes = [];
  if (merged.length <= MAX_ITEMS) {
    for (const output of merged) nodes.push(outputNode(output, blobs));
  } else {
    const half = MAX_ITEMS / 2;
    for (const output of merged.slice(0, half)) nodes.push(outputNode(output, blobs));
    nodes.push(el("p", "elided", `… ${merged.length - MAX_ITEMS} outputs not shown …`));
    for (const output of merged.slice(-half)) nodes.push(outputNode(output, blobs));
  }
  box.replaceChildren(...nodes);
}

// --- cells -------------------------------------------------------------------------------------------------

function cellElement(number) {
  let parts = elements.get(number);
  if (parts) return parts;
  const root = el("section", "cell");
  root.dataset.cell = String(number);
  parts = {
    root,
    prompt: el("div", "prompt"),
    meta: el("div", "meta"),
    code: el("div", "code"),
    outputs: el("div", "outputs"),
    shownCode: null,
    blobs: [],
  };
  root.append(parts.prompt, parts.meta, el("div", "prompt"), parts.code, el("div", "prompt"), parts.outputs);
  const later = [...elements.keys()].filter((n) => n > number).sort((a, b) => a - b)[0];
  $("cells").insertBefore(root, later === undefined ? null : elements.get(later).root);
  elements.set(number, parts);
  return parts;
}

function renderCell(number) {
  const cell = view.cells.get(number);
  if (!cell) {
    const parts = elements.get(number);
    if (parts) {
      parts.blobs.forEach((url) => URL.revokeObjectURL(url));
      parts.root.remove();
      elements.delete(number);
    }
    return;
  }
  const parts = cellElement(number);
  const running = view.running && view.running.number === number;
  parts.root.classList.toggle("running", Boolean(running));
  parts.prompt.textContent = running ? "In [*]:" : `In [${cell.execution_count ?? " "}]:`;

  const badges = [el("span", null, `cell ${number}`)];
  const status = running ? "running" : cell.status;
  if (status) badges.push(el("span", `badge ${status}`, status));
  if (!running && cell.duration !== null && cell.duration !== undefined) badges.push(el("span", null, seconds(cell.duration)));
  if (cell.stale) badges.push(el("span", "badge stale", "stale"));
  if (!running && cell.usage) {
    if (cell.usage.peak_memory_bytes != null) badges.push(el("span", null, `peak ${mebibytes(cell.usage.peak_memory_bytes)}`));
    if (cell.usage.cpu_seconds != null) badges.push(el("span", null, `CPU ${seconds(cell.usage.cpu_seconds)}`));
  }
  if (!running && cell.ended) badges.push(el("span", null, new Date(cell.ended * 1000).toLocaleTimeString()));
  parts.meta.replaceChildren(...badges);

  if (parts.shownCode !== cell.code) {
    const code = el("code", "language-python");
    code.innerHTML = hljs.highlight(cell.code, { language: "python", ignoreIllegals: true }).value; // escaped by hljs
    const pre = el("pre");
    pre.append(code);
    parts.code.replaceChildren(pre);
    code.classList.add("hljs");
    parts.shownCode = cell.code;
  }
  parts.blobs.forEach((url) => URL.revokeObjectURL(url));
  parts.blobs = [];
  renderOutputs(parts.outputs, running ? view.running.outputs : cell.outputs || [], parts.blobs);
}

function renderHeader() {
  const kernel = view.kernel || {};
  $("title").textContent = `kernel ${kernelId}`;
  document.title = `JupyCell kernel ${kernelId} (${kernel.state || "…"})`;
  $("state").textContent = kernel.state || "…";
  $("state").dataset.state = kernel.state || "";
  const cells = [...view.cells.values()];
  const ran = cells.filter((c) => c.status).length;
  const stale = cells.filter((c) => c.stale).length;
  $("counts").textContent = `${cells.length} cells · ${ran} run · ${stale} stale`;
  $("empty").hidden = cells.length > 0;
  const death = $("death");
  death.hidden = !kernel.last_death;
  death.textContent = kernel.last_death ? `Last death: ${kernel.last_death}` : "";
}

function schedule(number) {
  if (number !== undefined) dirty.add(number);
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  for (const number of dirty) renderCell(number);
  dirty.clear();
  renderHeader();
}

function applyStale(stale) {
  for (const [number, flag] of Object.entries(stale || {})) {
    const cell = view.cells.get(Number(number));
    if (cell && cell.stale !== flag) {
      cell.stale = flag;
      schedule(cell.number);
    }
  }
}

// --- events ------------------------------------------------------------------------------------------------

const handlers = {
  snapshot(data) {
    view.kernel = data.kernel;
    for (const number of elements.keys()) dirty.add(number);
    view.cells = new Map(data.cells.map((cell) => [cell.number, cell]));
    view.running = data.running ? { ...data.running, outputs: [...data.running.outputs] } : null;
    for (const number of view.cells.keys()) dirty.add(number);
    schedule();
  },
  cell_added(data) {
    view.cells.set(data.cell.number, data.cell);
    applyStale(data.stale);
    schedule(data.cell.number);
  },
  cell_edited(data) {
    handlers.cell_added(data);
  },
  cell_deleted(data) {
    view.cells.delete(data.number);
    applyStale(data.stale);
    schedule(data.number);
  },
  run_started(data) {
    view.running = { number: data.number, started: data.started, outputs: [] };
    schedule(data.number);
  },
  output(data) {
    if (view.running && view.running.number === data.number) {
      view.running.outputs.push(data.output);
      schedule(data.number);
    }
  },
  run_finished(data) {
    if (view.running && view.running.number === data.cell.number) view.running = null;
    view.cells.set(data.cell.number, data.cell);
    applyStale(data.stale);
    schedule(data.cell.number);
  },
  kernel_state(data) {
    view.kernel = { ...(view.kernel || {}), state: data.state, last_death: data.last_death };
    if (data.state !== "busy" && view.running) {
      const number = view.running.number;
      if (data.state !== "idle") view.running = null; // died or replaced: run_finished follows or never comes
      schedule(number);
    }
    schedule();
  },
};

// The event stream, read with fetch() so that the token goes in a header (EventSource cannot send one), resumed
// with Last-Event-ID after a break.
function dispatch(block, state) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") kind = value;
    else if (field === "data") data.push(value);
    else if (field === "id") state.lastId = value;
  }
  if (data.length && handlers[kind]) {
    handlers[kind](JSON.parse(data.join("\n")));
    document.body.dataset.lastEvent = state.lastId; // for tests and the curious
  }
}

function showGone(reason) {
  $("connection").textContent = reason;
  $("state").textContent = "gone";
  $("state").dataset.state = "gone";
}

async function follow() {
  if (!kernelId) {
    $("connection").textContent = "not a kernel view address";
    return;
  }
  const state = { lastId: null };
  let delay = 500;
  for (;;) {
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (state.lastId) headers["Last-Event-ID"] = state.lastId;
    try {
      const response = await fetch(`/kernels/${kernelId}/events`, { headers, cache: "no-store" });
      if (response.status === 401) return showGone(token ? "this link has expired or was revoked" : "this gateway needs a view link (ask the kernel's owner)");
      if (response.status === 404) return showGone("no such kernel (it was shut down, or never existed)");
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      $("connection").textContent = "live";
      delay = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end), state);
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      // network break: fall through and retry
    }
    $("connection").textContent = "reconnecting…";
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

follow();
