// DOM helpers: no state of their own beyond the toast timer. Everything is built with DOM APIs
// (textContent, never innerHTML) so task titles can never inject markup.

export const $ = (selector, root = document) => root.querySelector(selector);

export function show(el, visible = true) {
  if (el) el.hidden = !visible;
}

// ---- announcements and errors ---------------------------------------------------------------------

let announceTimer = null;
/** Polite screen-reader announcement (#status). */
export function announce(message) {
  const el = $("#status");
  if (!el) return;
  // Clear first so repeating the same message is announced again.
  el.textContent = "";
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => { el.textContent = message; }, 50);
}

/** Network / server error banner (#global-error, role=alert). Pass null to clear. */
export function showGlobalError(message) {
  const el = $("#global-error");
  if (!el) return;
  el.textContent = message || "";
  el.hidden = !message;
}

export function setSyncing(on) {
  show($("#sync-note"), on);
}

/** An outcome message in a status paragraph; kind "error" / "success" colours it, "info" does not. */
export function setMessage(el, message, kind = "info") {
  el.textContent = message || "";
  el.classList.toggle("is-error", kind === "error");
  el.classList.toggle("is-success", kind === "success");
}

/** Field-level message: input gets aria-invalid, its #<id>-error paragraph gets the text. */
export function setFieldError(input, errorEl, message) {
  if (errorEl) {
    errorEl.textContent = message || "";
    errorEl.hidden = !message;
  }
  if (input) {
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

// ---- icons ------------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";
const ICONS = {
  edit: ["M12 20h9", "M16.5 3.5a2.12 2.12 0 0 1 3 3L7 19l-4 1 1-4Z"],
  trash: ["M3 6h18", "M8 6V4h8v2", "M19 6l-1 14H6L5 6", "M10 11v6", "M14 11v6"],
  clock: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18", "M12 7v5l3 2"],
};

const ICON_ATTRIBUTES = {
  viewBox: "0 0 24 24", width: "18", height: "18", fill: "none", stroke: "currentColor", "stroke-width": "2",
  "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true", focusable: "false",
};

export function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  for (const [key, value] of Object.entries(ICON_ATTRIBUTES)) svg.setAttribute(key, value);
  for (const d of ICONS[name]) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

// ---- task rows ---------------------------------------------------------------------------------------

/** Quoted title for labels, shortened so screen readers do not read a 500-char title each time. */
export function quoted(title) {
  const t = String(title);
  return `“${t.length > 80 ? `${t.slice(0, 77)}…` : t}”`;
}

export function formatDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Builds the <li> for a task (view mode). Handlers are attached by delegation in task-actions.js. */
export function renderTask(task) {
  const li = el("li", { class: "task", "data-testid": "task-item", "data-task-id": task.id });
  const toggle = el("input", {
    type: "checkbox",
    id: `toggle-${task.id}`,
    class: "task-toggle",
    "data-testid": "task-toggle",
  });
  const edit = iconButton("edit", "Edit", "edit");
  const history = iconButton("history", "History", "clock");
  const del = iconButton("delete", "Delete", "trash", "btn-danger");
  li.append(toggle, renderTaskBody(task), el("div", { class: "task-actions" }, edit, history, del));
  updateTaskRow(li, task);
  return li;
}

/** A row's icon button: data-testid task-<action>, found by delegation through data-action. */
function iconButton(action, title, iconName, extraClass = "") {
  return el("button", {
    type: "button",
    class: `btn btn-icon ${extraClass}`.trim(),
    "data-testid": `task-${action}`,
    "data-action": action,
    title,
  }, icon(iconName));
}

function renderTaskBody(task) {
  return el("div", { class: "task-body" },
    el("span", { class: "task-title", "data-testid": "task-title", text: task.title }),
    el("span", { class: "task-meta" }));
}

/** Updates a row in place (keeps keyboard focus where it is). */
export function updateTaskRow(li, task) {
  const done = Boolean(task.done);
  li.classList.toggle("is-done", done);
  li.dataset.done = String(done);
  li.dataset.version = task.version ?? "";
  const toggle = li.querySelector("[data-testid=task-toggle]");
  toggle.checked = done;
  toggle.setAttribute("aria-label", done ? `Reopen ${quoted(task.title)}` : `Mark ${quoted(task.title)} as done`);
  li.querySelector("[data-testid=task-edit]").setAttribute("aria-label", `Edit ${quoted(task.title)}`);
  li.querySelector("[data-testid=task-history]").setAttribute("aria-label", `History of ${quoted(task.title)}`);
  li.querySelector("[data-testid=task-delete]").setAttribute("aria-label", `Delete ${quoted(task.title)}`);
  const title = li.querySelector("[data-testid=task-title]");
  if (title) title.textContent = task.title;
  const meta = li.querySelector(".task-meta");
  if (meta) {
    meta.textContent = done && task.done_at ? `Done ${formatDate(task.done_at)}` : `Added ${formatDate(task.created_at)}`;
  }
}

/** Leaves edit mode: puts the title back and shows the row's buttons again. */
export function restoreTaskView(li, task) {
  li.querySelector(".task-body").replaceWith(renderTaskBody(task));
  li.classList.remove("is-editing");
  li.querySelector(".task-actions").hidden = false;
  updateTaskRow(li, task);
}

/** Swaps the title of a row for an inline edit form. Returns the input. */
export function renderEditForm(li, task) {
  const body = li.querySelector(".task-body");
  const inputId = `edit-${task.id}`;
  const errorId = `edit-error-${task.id}`;
  const input = el("input", {
    type: "text",
    id: inputId,
    class: "task-edit-input",
    value: task.title,
    maxLength: 500,
    autocomplete: "off",
    "data-testid": "task-title-input",
    "aria-describedby": errorId,
  });
  const label = el("label", { class: "visually-hidden", htmlFor: inputId, text: `Edit title of ${quoted(task.title)}` });
  const save = el("button", { type: "submit", class: "btn btn-primary btn-small", "data-testid": "task-save", text: "Save" });
  const cancel = el("button", {
    type: "button", class: "btn btn-ghost btn-small", "data-testid": "task-cancel", "data-action": "cancel-edit", text: "Cancel",
  });
  const error = el("p", { id: errorId, class: "field-error", "data-testid": "task-error", hidden: true });
  const form = el("form", { class: "task-edit-form", noValidate: true }, label,
    el("div", { class: "task-edit-row" }, input, save, cancel), error);
  body.replaceChildren(form);
  li.classList.add("is-editing");
  li.querySelector(".task-actions").hidden = true;
  input.focus();
  input.select();
  return input;
}

// ---- toast -------------------------------------------------------------------------------------------

let toastTimer = null;
let toastAction = null;

/** Shows the toast with an optional action; it hides itself after `ms` unless focused/hovered. */
export function showToast(message, { actionLabel = null, onAction = null, ms = 7000 } = {}) {
  const toast = $("#toast");
  const undo = $("#toast-undo");
  $("#toast-message").textContent = message;
  toastAction = onAction;
  undo.textContent = actionLabel || "";
  undo.hidden = !actionLabel;
  toast.hidden = false;
  clearTimeout(toastTimer);
  const arm = () => {
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      // Keep it while the user is on it (keyboard focus or pointer).
      if (toast.contains(document.activeElement) || toast.matches(":hover")) arm();
      else hideToast();
    }, ms);
  };
  arm();
}

export function hideToast() {
  const toast = $("#toast");
  clearTimeout(toastTimer);
  const hadFocus = toast.contains(document.activeElement);
  toast.hidden = true;
  toastAction = null;
  if (hadFocus) $("#new-task-title")?.focus();
}

export function initToast() {
  $("#toast-undo").addEventListener("click", () => {
    const action = toastAction;
    hideToast();
    if (action) action();
  });
  $("#toast-close").addEventListener("click", hideToast);
  $("#toast").addEventListener("keydown", (e) => {
    if (e.key === "Escape") hideToast();
  });
}
