// The operator console: plain JS over the HTTP API (no build step, no CDN).
// Every value is put in the page with textContent, never as HTML.
"use strict";

const KEY_STORE = "wf-api-key";
const STATUSES = ["", "running", "waiting", "paused_for_quota", "completed", "failed", "cancelled", "moved"];
const STATUS_LABELS = { paused_for_quota: "paused for quota" };
// Readable names of the stuck reasons (wfapps/stuck.py); an unknown kind shows as itself.
const STUCK_LABELS = {
  no_worker: "no worker for its queue",
  lease_expired: "lease expired (its worker died mid-message)",
  no_progress: "no progress",
  timer_overdue: "timer overdue",
  waiting_event: "waiting on an event",
};

function stuckLabel(stuck) {
  return STUCK_LABELS[stuck.kind] || stuck.kind;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "onclick" || name === "onchange" || name === "oninput" || name === "onsubmit") {
      node[name] = value;
    } else if (value !== null && value !== undefined && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// replaceChildren would show a null child as the text "null".
function render(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

function say(text, kind) {
  const box = document.getElementById("message");
  box.textContent = text || "";
  box.className = kind || "";
}

class ApiError extends Error {
  constructor(status, error) {
    super(`${error.code}: ${error.message}`);
    this.status = status;
    this.code = error.code;
  }
}

async function api(method, path, body) {
  const headers = { "Authorization": `Bearer ${localStorage.getItem(KEY_STORE) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, data.error || { code: "HTTP_" + response.status, message: response.statusText });
  }
  return data;
}

function statusCell(status) {
  return el("span", { class: `status status-${status}`, "data-status": status }, STATUS_LABELS[status] || status);
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

// -- runs list ---------------------------------------------------------------------
async function showRuns(params, current = () => true) {
  const view = document.getElementById("view");
  const status = params.get("status") || "";
  const definition = params.get("definition") || "";
  const query = new URLSearchParams();
  if (status) query.append("status", status);
  if (definition) query.append("definition_id", definition);
  const data = await api("GET", `/runs?${query}`);
  const statusSelect = el("select", { id: "filter-status" },
    ...STATUSES.map((s) => el("option", { value: s, selected: s === status }, STATUS_LABELS[s] || s || "any status")));
  const definitionInput = el("input", { id: "filter-definition", value: definition, placeholder: "definition id" });
  const filters = el("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (statusSelect.value) next.set("status", statusSelect.value);
    if (definitionInput.value) next.set("definition", definitionInput.value);
    location.hash = `#/runs?${next}`;
  } }, el("label", {}, "Status ", statusSelect), el("label", {}, "Definition ", definitionInput),
  el("button", { type: "submit" }, "Filter"));
  const rows = data.runs.map((run) => el("tr", {
    class: "clickable run-row", "data-run-id": run.run_id,
    onclick: () => { location.hash = `#/run/${encodeURIComponent(run.run_id)}`; },
  }, el("td", {}, el("a", { href: `#/run/${encodeURIComponent(run.run_id)}` }, run.run_id)),
  el("td", {}, `${run.definition_id} v${run.definition_version}`),
  el("td", {}, statusCell(run.status), run.stuck ? el("span", { class: "badge", "data-kind": run.stuck.kind, title: `${stuckLabel(run.stuck)}: ${run.stuck.reason}` }, " stuck") : null),
  el("td", {}, run.version), el("td", {}, run.created_at), el("td", {}, run.last_progress_at)));
  const archiveFile = el("input", { id: "import-file", type: "file", accept: "application/json" });
  const importForm = el("form", { class: "row", id: "import-form", onsubmit: (e) => {
    e.preventDefault();
    importRun(archiveFile.files[0]).catch(report);
  } }, el("label", {}, "Import a run archive ", archiveFile), el("button", { type: "submit" }, "Import"));
  if (!current()) return;
  render(view, el("h2", {}, "Runs"), filters, importForm,
    el("table", { id: "runs" }, el("tr", {}, ...["Run", "Definition", "Status", "Version", "Created", "Last progress"].map((h) => el("th", {}, h))), ...rows),
    rows.length ? null : el("p", {}, "No runs."));
}

// -- one run -----------------------------------------------------------------------
async function showRun(runId, current = () => true) {
  const view = document.getElementById("view");
  const path = `/runs/${encodeURIComponent(runId)}`;
  const [run, timeline, targets] = await Promise.all([api("GET", path), api("GET", `${path}/timeline`),
    api("GET", "/move-targets")]);
  const stateBox = el("pre", { id: "state" });
  const versionLabel = el("span", { id: "version-label" });
  const slider = el("input", { id: "version", type: "range", min: 1, max: run.version, value: run.version });
  async function loadVersion(version) {
    slider.value = version;
    versionLabel.textContent = `version ${version} of ${run.version}`;
    const state = await api("GET", `${path}/state?version=${version}`);
    if (Number(slider.value) === version) stateBox.textContent = json(state);
  }
  slider.oninput = () => loadVersion(Number(slider.value)).catch(report);
  const previous = el("button", { id: "version-prev", onclick: () => loadVersion(Math.max(1, Number(slider.value) - 1)).catch(report) }, "◀ previous");
  const next = el("button", { id: "version-next", onclick: () => loadVersion(Math.min(run.version, Number(slider.value) + 1)).catch(report) }, "next ▶");

  const controls = el("div", { class: "row" });
  if (run.status === "running" || run.status === "waiting") {
    controls.append(el("button", { id: "cancel", onclick: () => cancelRun(runId).catch(report) }, "Cancel run"));
  }
  if ((run.status === "running" || run.status === "waiting") && targets.length) {
    const target = el("select", { id: "move-target" }, ...targets.map((name) => el("option", { value: name }, name)));
    controls.append(el("label", {}, "Move to ", target),
      el("button", { id: "move", onclick: () => moveRun(runId, target.value).catch(report) }, "Move run"));
  }
  controls.append(el("button", { id: "replay", onclick: () => openReplay(run) }, "Replay…"));
  const withSecrets = el("input", { id: "export-secrets", type: "checkbox" });
  controls.append(el("button", { id: "export", onclick: () => exportRun(runId, withSecrets.checked).catch(report) }, "Export"),
    el("label", {}, withSecrets, " include secrets (to move the run)"));

  const moved = run.status === "moved" ? el("div", { class: "banner moved", id: "moved-banner" },
    el("strong", {}, "Moved: "), `this run now executes on ${run.engine}/${run.queue} at ${run.moved_to}; this engine refuses its events and cancels (RUN_MOVED).`) : null;
  const banner = run.stuck ? el("div", { class: "banner", id: "stuck-banner", "data-kind": run.stuck.kind },
    el("strong", {}, `Stuck: ${stuckLabel(run.stuck)}. `), run.stuck.reason,
    run.stuck.kind === "lease_expired" ? ` (holder ${run.stuck.details.holder}, lease expired at ${run.stuck.details.expired_at})` : null) : null;
  const quota = run.status === "paused_for_quota" ? el("div", { class: "banner quota", id: "quota-banner" },
    el("strong", {}, "Paused for quota: "), "this tenant is at its limit of active runs; the run starts (oldest first) when one of them finishes.") : null;
  const unserved = run.history_available === false ? el("div", { class: "banner", id: "unserved-banner" },
    el("strong", {}, "No worker serves this run. "), `Its history, input and output cannot be read until a worker polls task queue ${run.queue}.`) : null;
  const tasks = run.human_tasks.map((t) => el("li", {}, `task ${t.title} for ${t.assignee || "anyone"}`, t.overdue ? el("span", { class: "badge" }, "overdue") : null, " ", el("a", { href: "#/inbox" }, "open inbox")));
  const waits = run.waits.map((w) => el("li", {}, `waiting for event ${w.event_name} (key ${w.correlation_key})`));
  const stepRows = timeline.steps.map((s) => el("tr", { class: "step-row" }, el("td", {}, s.key), el("td", {}, s.step_type),
    el("td", {}, s.started_s.toFixed(3)), el("td", {}, s.duration_s === null ? "" : `${s.duration_s.toFixed(3)}s`),
    el("td", {}, s.attempts || ""), el("td", {}, s.status), el("td", {}, s.detail)));
  const eventRows = timeline.events.map((e) => el("tr", { class: "clickable event-row", onclick: () => loadVersion(e.version).catch(report) },
    el("td", {}, e.version), el("td", {}, e.offset_s.toFixed(3)), el("td", {}, e.type), el("td", {}, e.key), el("td", {}, e.data)));

  if (!current()) return;
  render(view, 
    el("h2", {}, "Run ", el("span", { id: "run-id" }, run.run_id)),
    el("p", {}, statusCell(run.status), ` · ${run.definition_id} v${run.definition_version} · ${run.engine}/${run.queue} · version ${run.version}`,
      run.replay_of ? el("span", {}, " · replay of ", el("a", { href: `#/run/${encodeURIComponent(run.replay_of)}` }, run.replay_of)) : null),
    moved, quota, banner, unserved, controls, el("div", { id: "replay-panel" }),
    tasks.length || waits.length ? el("ul", {}, ...tasks, ...waits) : null,
    el("div", { class: "row" },
      el("div", { class: "panel" }, el("h3", {}, "Input"), el("pre", { id: "input" }, json(run.input)),
        el("h3", {}, "Output"), el("pre", { id: "output" }, json(run.output)),
        run.error ? el("pre", { id: "error" }, json(run.error)) : null),
      el("div", { class: "panel" }, el("h3", {}, "State at a version"), el("div", { class: "row" }, previous, slider, next, versionLabel), stateBox)),
    el("h3", {}, "Steps"),
    el("table", { id: "steps" }, el("tr", {}, ...["Step", "Type", "t+s", "Took", "Tries", "Status", "Detail"].map((h) => el("th", {}, h))), ...stepRows),
    el("h3", {}, "Events"),
    el("table", { id: "events" }, el("tr", {}, ...["v", "t+s", "Event", "Step", "Data"].map((h) => el("th", {}, h))), ...eventRows));
  await loadVersion(run.version);
}

async function cancelRun(runId) {
  const result = await api("POST", `/runs/${encodeURIComponent(runId)}/cancel`, { reason: "cancelled in the console" });
  // Report what the engine recorded, not what was asked for.
  say(result.cancelled ? `The engine cancelled run ${runId}.` : `The engine did not cancel run ${runId}: it is ${result.run.status}.`, result.cancelled ? "ok" : "error");
  await showRun(runId);
}

async function moveRun(runId, target) {
  if (!confirm(`Move run ${runId} to ${target}? This engine will no longer execute it.`)) return;
  const result = await api("POST", `/runs/${encodeURIComponent(runId)}/move`, { target });
  // Report both sides as the engines recorded them.
  say(`Run ${runId} is ${result.target.status} on ${target} (${result.target.engine}/${result.target.queue}); here it is ${result.source.status}.`, "ok");
  await showRun(runId);
}

async function importRun(file) {
  if (!file) { say("Choose an archive file written by an export (with secrets).", "error"); return; }
  const archive = JSON.parse(await file.text());
  const run = await api("POST", "/runs/import", { archive });
  say(`Imported run ${run.run_id} (${run.status}).`, "ok");
  location.hash = `#/run/${encodeURIComponent(run.run_id)}`;
}

function openReplay(run) {
  const panel = document.getElementById("replay-panel");
  const shown = json(run.input);
  const editor = el("textarea", { id: "replay-input" }, shown);
  const note = el("p", {}, run.secret_fields.length
    ? `Secret fields (${run.secret_fields.join(", ")}) are shown as ***. Unless you edit the input, the replay starts from the original, unredacted input.`
    : "Unless you edit the input, the replay starts from the original input.");
  const start = el("button", { id: "replay-start", onclick: async () => {
    try {
      const edited = editor.value.trim() !== shown.trim();
      const body = edited ? { input: JSON.parse(editor.value), use_original_input: false } : {};
      const created = await api("POST", `/runs/${encodeURIComponent(run.run_id)}/replay`, body);
      say(`Started run ${created.run_id} (replay of ${run.run_id}${edited ? ", edited input" : ""}).`, "ok");
      location.hash = `#/run/${encodeURIComponent(created.run_id)}`;
    } catch (e) { report(e); }
  } }, "Start replay");
  render(panel, el("div", { class: "card" }, el("h3", {}, "Replay"), note, editor, start));
}

async function exportRun(runId, includeSecrets) {
  const archive = await api("GET", `/runs/${encodeURIComponent(runId)}/export?secrets=${includeSecrets ? "include" : "redact"}`);
  const blob = new Blob([json(archive)], { type: "application/json" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `run-${runId}.json` });
  document.body.append(link);
  link.click();
  link.remove();
  say(`Exported run ${runId}${includeSecrets ? " with its secrets" : " (secrets redacted)"}.`, "ok");
}

// -- inbox -------------------------------------------------------------------------
function formField(name, schema, required) {
  const label = `${schema.title || name}${required ? " *" : ""}`;
  let input;
  if (Array.isArray(schema.enum)) {
    input = el("select", { name }, ...schema.enum.map((v) => el("option", { value: JSON.stringify(v) }, String(v))));
  } else if (schema.type === "boolean") {
    input = el("input", { name, type: "checkbox" });
  } else if (schema.type === "number" || schema.type === "integer") {
    input = el("input", { name, type: "number", step: schema.type === "integer" ? 1 : "any" });
  } else if (schema.type === "object" || schema.type === "array") {
    input = el("textarea", { name, placeholder: "JSON" });
  } else {
    input = el("input", { name, type: "text" });
  }
  input.dataset.kind = Array.isArray(schema.enum) ? "enum" : (schema.type || "string");
  return el("p", {}, el("label", {}, label, " ", input), schema.description ? el("small", {}, ` ${schema.description}`) : null);
}

function readForm(form) {
  const data = {};
  for (const input of form.querySelectorAll("[name]")) {
    const kind = input.dataset.kind;
    if (kind === "boolean") { data[input.name] = input.checked; continue; }
    if (input.value === "") continue;  // left out: the form schema says whether it may be
    if (kind === "number" || kind === "integer") data[input.name] = Number(input.value);
    else if (kind === "enum" || kind === "object" || kind === "array") data[input.name] = JSON.parse(input.value);
    else data[input.name] = input.value;
  }
  return data;
}

async function showInbox(params, current = () => true) {
  const view = document.getElementById("view");
  const assignee = params.get("assignee") || "";
  const tasks = await api("GET", `/tasks${assignee ? `?assignee=${encodeURIComponent(assignee)}` : ""}`);
  const who = el("input", { id: "filter-assignee", value: assignee, placeholder: "assignee" });
  const filter = el("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    location.hash = who.value ? `#/inbox?assignee=${encodeURIComponent(who.value)}` : "#/inbox";
  } }, el("label", {}, "Assignee ", who), el("button", { type: "submit" }, "Show"));
  const cards = tasks.map((task) => {
    const schema = task.form_schema || {};
    const required = new Set(schema.required || []);
    const form = el("form", { class: "task-form" },
      ...Object.entries(schema.properties || {}).map(([name, s]) => formField(name, s, required.has(name))));
    const outcome = (value) => el("button", { type: "button", class: "outcome", "data-outcome": value, onclick: async () => {
      try {
        await api("POST", `/tasks/${encodeURIComponent(task.task_id)}/decision`, { outcome: value, data: readForm(form), decided_by: assignee || task.assignee || "console" });
        say(`Decision "${value}" on "${task.title}" accepted; the run resumes.`, "ok");
        await showInbox(params);
      } catch (e) { report(e); }
    } }, value);
    return el("div", { class: `card task${task.overdue ? " overdue" : ""}`, "data-task-id": task.task_id },
      el("h3", {}, task.title, task.overdue ? el("span", { class: "badge overdue-badge" }, " overdue") : null),
      el("p", {}, `for ${task.assignee || "anyone"} · run `, el("a", { href: `#/run/${encodeURIComponent(task.run_id)}` }, task.run_id),
        ` · due ${task.deadline || "no deadline"}`),
      form, el("div", { class: "row" }, ...task.outcomes.map(outcome)));
  });
  if (!current()) return;
  render(view, el("h2", {}, "Inbox"), filter, ...cards, cards.length ? null : el("p", { id: "inbox-empty" }, "No open tasks."));
}

// -- routing -----------------------------------------------------------------------
function report(e) {
  say(e instanceof ApiError ? `Error ${e.code}: ${e.message.slice(e.code.length + 2)}` : String(e), "error");
}

// Each navigation renders only while it is the latest: a slow answer to an earlier one
// (the unfiltered list, say) must not replace the page the operator asked for since.
let navigation = 0;

async function route() {
  const seq = ++navigation;
  const current = () => seq === navigation;
  const hash = location.hash || "#/runs";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  if (!localStorage.getItem(KEY_STORE)) {
    render(document.getElementById("view"), el("p", {}, "Enter an API key (made with `wf keys create`) above."));
    return;
  }
  try {
    if (path.startsWith("/run/")) await showRun(decodeURIComponent(path.slice(5)), current);
    else if (path.startsWith("/inbox")) await showInbox(params, current);
    else await showRuns(params, current);
  } catch (e) { if (current()) report(e); }
}

document.getElementById("key-form").onsubmit = (e) => {
  e.preventDefault();
  localStorage.setItem(KEY_STORE, document.getElementById("api-key").value.trim());
  say("Key saved in this browser.", "ok");
  route();
};
document.getElementById("api-key").value = localStorage.getItem(KEY_STORE) || "";
window.addEventListener("hashchange", route);
route();
