// TODO SPA entry point: screens (auth / tasks), state and event handlers.
//
// Design choices:
// - Writes go to the command API; the row is updated from the write's response right away, then
//   the counts are re-read from /api/me. Every read carries X-Min-Position (the highest
//   X-Event-Position seen, see api.js), so the query side answers only once it has applied our
//   own writes. A read answering X-Stale: true shows "Syncing…" and is re-fetched once shortly after.
// - Delete: the task is deleted immediately (no confirmation dialog) and a toast offers Undo for
//   a few seconds. Undo restores it (POST /tasks/{id}/restore): the same task, id and creation
//   time, comes back as it was.
// - History (a drawer per task) and the activity view live in history.js.
// - Rename uses If-Match with the task's version; a 409 means the task changed elsewhere: the user
//   is told and the list reloaded. Toggling done sends If-Match too.
// - A task completed/reopened while the Open or Done filter is active stays in place (updated, so
//   a misclick is easy to revert and keyboard focus does not jump) until the list is reloaded:
//   clicking any filter button, including the active one, re-reads the list.

import * as api from "./api.js";
import { startLiveUpdates } from "./live.js";
import {
  $, announce, hideToast, initToast, quoted, renderEditForm, renderTask, restoreTaskView,
  setFieldError, setSyncing, show, showGlobalError, showToast, updateTaskRow,
} from "./ui.js";
import { browserTimezone, closeSettings, initSettings } from "./settings.js";
import { initHistory, openHistory, refreshActivity, resetHistoryViews } from "./history.js";

const PAGE_SIZE = 50;
const STALE_RETRY_MS = 1200;
const SESSION_EXPIRED = "Your session has expired, please log in again";

const state = {
  view: null, // "auth" | "tasks"
  authMode: "login", // "login" | "register"
  filter: "all", // "all" | "open" | "done"
  tasks: [], // displayed tasks, newest first
  nextCursor: null,
  listSeq: 0, // bumps on every list reset; stale answers are dropped
  meSeq: 0,
  listStale: false,
  meStale: false,
  editingId: null,
  pending: new Set(), // task ids with a write in flight
  stopLive: null, // stops the live updates of the signed-in session
};

// ---- helpers ----------------------------------------------------------------------------------------

const matchesFilter = (task) =>
  state.filter === "all" || (state.filter === "done" ? task.done : !task.done);

const findTask = (id) => state.tasks.find((t) => t.id === id);

function rowFor(id) {
  for (const li of $("#task-list").children) if (li.dataset.taskId === id) return li;
  return null;
}

function updateSyncNote() {
  setSyncing(state.listStale || state.meStale);
}

/** Common handling for failures of any authenticated call. Returns true when handled. */
function handleCommonError(err) {
  if (err instanceof api.SessionExpiredError) {
    expireSession();
    return true;
  }
  if (err instanceof api.ApiError) {
    showGlobalError(err.message);
    return true;
  }
  console.error(err); // a bug, not a server answer
  showGlobalError("Something went wrong. Please reload the page.");
  return true;
}

// ---- screens ----------------------------------------------------------------------------------------

function showAuth(message = "", kind = "info") {
  state.stopLive?.();
  state.stopLive = null;
  state.view = "auth";
  state.tasks = [];
  state.nextCursor = null;
  state.editingId = null;
  state.listSeq += 1;
  state.meSeq += 1;
  state.listStale = state.meStale = false;
  updateSyncNote();
  showGlobalError(null);
  hideToast();
  resetHistoryViews();
  $("#task-list").replaceChildren();
  show($("#tasks-view"), false);
  closeSettings();
  show($("#user-box"), false);
  $("#user-email").textContent = "";
  show($("#auth-view"), true);
  setAuthMessage(message, kind);
  setAuthMode(window.location.hash === "#register" ? "register" : "login", { keepMessage: true });
  document.title = "Todo · Log in";
}

function enterApp() {
  state.view = "tasks";
  showGlobalError(null);
  show($("#auth-view"), false);
  show($("#tasks-view"), true);
  show($("#user-box"), true);
  document.title = "Todo";
  if (window.location.hash) history.replaceState(null, "", window.location.pathname);
  setFilter("all", { load: false });
  refreshStats();
  loadTasks({ reset: true });
  $("#new-task-title").focus();
  startLive();
}

/** Changes made elsewhere (another tab, another device) appear here as they happen. */
function startLive() {
  state.stopLive?.();
  state.stopLive = startLiveUpdates({
    // The stream runs from now: re-read what is shown, so nothing falls between the two.
    onReady: () => { refreshStats(); loadTasks({ reset: true }); },
    onTask: (task) => {
      const shown = findTask(task.id);
      // Our own write in flight settles the row itself; an older state never replaces a newer.
      if (state.pending.has(task.id) || (shown && shown.version >= task.version)) return;
      upsertTask(task, { keepShown: true });
      refreshStats();
    },
    onTaskDeleted: (id) => {
      if (!state.pending.has(id) && findTask(id)) removeTaskFromList(id);
      refreshStats();
    },
    onSessionExpired: expireSession,
  });
}

function expireSession() {
  api.clearSession();
  if (state.view === "auth") {
    setAuthMessage(SESSION_EXPIRED, "error");
    return;
  }
  showAuth(SESSION_EXPIRED, "error");
  $("#email").focus();
}

function logout() {
  api.clearSession();
  showGlobalError(null);
  showAuth("You have been logged out.", "info");
  $("#email").focus();
}

// ---- auth -------------------------------------------------------------------------------------------

function setAuthMessage(message, kind = "info") {
  const el = $("#auth-message");
  el.textContent = message || "";
  el.classList.toggle("is-error", kind === "error");
  el.classList.toggle("is-success", kind === "success");
}

function clearAuthErrors() {
  setFieldError($("#email"), $("#email-error"), null);
  setFieldError($("#password"), $("#password-error"), null);
  setFieldError(null, $("#auth-form-error"), null);
}

function setAuthMode(mode, { keepMessage = false } = {}) {
  state.authMode = mode;
  const register = mode === "register";
  const form = $("#auth-view form");
  // One form, two ids: tests address it as #login-form or #register-form (see index.html).
  form.id = register ? "register-form" : "login-form";
  $("#auth-heading").textContent = register ? "Create your account" : "Log in";
  $("#auth-submit").textContent = register ? "Create account" : "Log in";
  $("#mode-login").setAttribute("aria-pressed", String(!register));
  $("#mode-register").setAttribute("aria-pressed", String(register));
  $("#password").setAttribute("autocomplete", register ? "new-password" : "current-password");
  show($("#password-hint"), register);
  clearAuthErrors();
  if (!keepMessage) setAuthMessage("");
}

function showFieldErrors(err, fields, fallbackEl) {
  // fields: {name: [input, errorEl]}; messages for unknown fields go to fallbackEl.
  const byField = new Map();
  const other = [];
  for (const { field, message } of err.fieldErrors) {
    if (field && fields[field]) byField.set(field, [...(byField.get(field) || []), message]);
    else other.push(message);
  }
  let first = null;
  for (const [name, [input, errorEl]] of Object.entries(fields)) {
    const messages = byField.get(name);
    setFieldError(input, errorEl, messages ? messages.join(" ") : null);
    if (messages && !first) first = input;
  }
  if (fallbackEl) setFieldError(null, fallbackEl, other.length ? other.join(" ") : null);
  if (first) first.focus();
}

/** Registers with the browser's timezone; a zone the server does not know is left to UTC. */
async function registerWithTimezone(email, password) {
  try {
    return await api.register(email, password, browserTimezone());
  } catch (err) {
    const zoneRefused = err instanceof api.ApiError && err.status === 422 &&
      err.fieldErrors.some((e) => e.field === "timezone");
    if (!zoneRefused) throw err;
    return api.register(email, password);
  }
}

async function onAuthSubmit(event) {
  event.preventDefault();
  const emailInput = $("#email");
  const passwordInput = $("#password");
  const submit = $("#auth-submit");
  const email = emailInput.value.trim();
  const password = passwordInput.value;
  clearAuthErrors();
  setAuthMessage("");
  showGlobalError(null);
  const fields = { email: [emailInput, $("#email-error")], password: [passwordInput, $("#password-error")] };

  submit.disabled = true;
  $("#auth-view form").setAttribute("aria-busy", "true");
  try {
    if (state.authMode === "register") {
      await registerWithTimezone(email, password);
      // Straight in: the same credentials log the new account in.
      await api.login(email, password);
      passwordInput.value = "";
      setAuthMode("login");
      setAuthMessage("");
      enterApp();
      announce("Account created");
    } else {
      await api.login(email, password);
      passwordInput.value = "";
      setAuthMessage("");
      enterApp();
    }
  } catch (err) {
    if (!(err instanceof api.ApiError)) {
      handleCommonError(err);
    } else if (err.status === 422 && err.fieldErrors.length) {
      showFieldErrors(err, fields, $("#auth-form-error"));
    } else if (err.status === 409) {
      setFieldError(emailInput, $("#email-error"), err.detail || "This email is already registered.");
      emailInput.focus();
    } else if (err.status === 401) {
      setAuthMessage("Incorrect email or password.", "error");
      passwordInput.focus();
    } else {
      setAuthMessage(err.message, "error");
    }
  } finally {
    submit.disabled = false;
    $("#auth-view form").removeAttribute("aria-busy");
  }
}

// ---- stats ------------------------------------------------------------------------------------------

async function refreshStats({ retry = false } = {}) {
  const seq = ++state.meSeq;
  try {
    const { data, stale } = await api.getMe();
    if (seq !== state.meSeq || state.view !== "tasks") return;
    const stats = data?.stats || {};
    $("#stat-undone").textContent = String(stats.undone ?? 0);
    $("#stat-done").textContent = String(stats.done ?? 0);
    $("#stat-total").textContent = String(stats.total ?? 0);
    if (data?.email) $("#user-email").textContent = data.email;
    refreshActivity(); // every write that changes the counts adds to the activity too
    state.meStale = stale;
    updateSyncNote();
    if (stale && !retry) {
      setTimeout(() => { if (state.view === "tasks") refreshStats({ retry: true }); }, STALE_RETRY_MS);
    }
  } catch (err) {
    if (seq !== state.meSeq) return;
    handleCommonError(err);
  }
}

// ---- list -------------------------------------------------------------------------------------------

function setFilter(filter, { load = true } = {}) {
  state.filter = filter;
  for (const f of ["all", "open", "done"]) {
    $(`#filter-${f}`).setAttribute("aria-pressed", String(f === filter));
  }
  if (load) loadTasks({ reset: true });
}

function emptyText() {
  if (state.filter === "open") return "No open tasks";
  if (state.filter === "done") return "No completed tasks yet";
  return "No tasks yet";
}

function updateListStates({ loading = false, error = null } = {}) {
  const empty = !loading && !error && state.tasks.length === 0;
  show($("#list-loading"), loading && state.tasks.length === 0);
  $("#list-empty").textContent = emptyText();
  show($("#list-empty"), empty);
  $("#list-error-text").textContent = error || "";
  show($("#list-error"), Boolean(error));
  show($("#load-more"), !loading && !error && Boolean(state.nextCursor));
  $("#task-list").setAttribute("aria-busy", String(loading));
}

/** Renders all rows from state; a row being edited is kept as is (with what was typed). */
function renderList() {
  const list = $("#task-list");
  const editing = state.editingId ? rowFor(state.editingId) : null;
  const rows = state.tasks.map((task) => (editing && task.id === state.editingId ? editing : renderTask(task)));
  if (editing && !state.tasks.some((t) => t.id === state.editingId)) state.editingId = null;
  list.replaceChildren(...rows);
}

async function loadTasks({ reset = false, retry = false } = {}) {
  if (state.view !== "tasks") return;
  const seq = reset ? ++state.listSeq : state.listSeq;
  const cursor = reset ? null : state.nextCursor;
  if (reset && !retry) {
    // A fresh load (filter change, reload): clear what a different query showed.
    state.tasks = [];
    state.nextCursor = null;
    state.editingId = null;
    $("#task-list").replaceChildren();
  }
  updateListStates({ loading: true });
  const loadMore = $("#load-more");
  try {
    const { data, stale } = await api.listTasks({ filter: state.filter, cursor, limit: PAGE_SIZE });
    if (seq !== state.listSeq || state.view !== "tasks") return;
    const items = Array.isArray(data?.items) ? data.items : [];
    if (reset) {
      state.tasks = items;
    } else {
      const seen = new Set(state.tasks.map((t) => t.id));
      state.tasks = state.tasks.concat(items.filter((t) => !seen.has(t.id)));
    }
    state.nextCursor = data?.next_cursor ?? null;
    const hadFocusOnMore = document.activeElement === loadMore;
    const firstNew = reset ? 0 : state.tasks.length - items.length;
    renderList();
    updateListStates();
    if (hadFocusOnMore) {
      // Keep keyboard users in place: focus the first newly loaded task, else the button.
      const li = $("#task-list").children[firstNew];
      (li?.querySelector("[data-testid=task-toggle]") || (state.nextCursor ? loadMore : $("#new-task-title"))).focus();
    }
    if (!reset) announce(`Loaded ${items.length} more task${items.length === 1 ? "" : "s"}.`);
    state.listStale = stale;
    updateSyncNote();
    if (stale && !retry && reset) {
      setTimeout(() => {
        if (state.view === "tasks" && seq === state.listSeq) loadTasks({ reset: true, retry: true });
      }, STALE_RETRY_MS);
    }
  } catch (err) {
    if (seq !== state.listSeq) return;
    if (err instanceof api.SessionExpiredError) {
      expireSession();
      return;
    }
    updateListStates({ error: err instanceof api.ApiError ? err.message : "Could not load your tasks." });
    if (!(err instanceof api.ApiError)) console.error(err);
  }
}

/**
 * Puts a task (new or changed) into the list, respecting the filter; keeps newest first.
 * keepShown: a row already on screen is updated even if it no longer matches the filter.
 */
function upsertTask(task, { prepend = false, keepShown = false } = {}) {
  const idx = state.tasks.findIndex((t) => t.id === task.id);
  const li = rowFor(task.id);
  if (!matchesFilter(task) && !(keepShown && idx >= 0)) {
    if (idx >= 0) removeTaskFromList(task.id);
    return;
  }
  if (idx >= 0) {
    state.tasks[idx] = task;
    if (li) updateTaskRow(li, task);
    return;
  }
  if (prepend) {
    state.tasks.unshift(task);
    $("#task-list").prepend(renderTask(task));
  } else {
    // Insert by created_at (newest first).
    let at = state.tasks.findIndex((t) => String(t.created_at) < String(task.created_at));
    if (at < 0) at = state.tasks.length;
    state.tasks.splice(at, 0, task);
    const list = $("#task-list");
    list.insertBefore(renderTask(task), list.children[at] || null);
  }
  updateListStates();
}

/** Removes a row; if it held focus, moves focus to the next row, else previous, else the input. */
function removeTaskFromList(id) {
  const li = rowFor(id);
  state.tasks = state.tasks.filter((t) => t.id !== id);
  if (state.editingId === id) state.editingId = null;
  if (li) {
    const hadFocus = li.contains(document.activeElement);
    const neighbour = li.nextElementSibling || li.previousElementSibling;
    li.remove();
    if (hadFocus) {
      (neighbour?.querySelector("[data-testid=task-toggle]") || $("#new-task-title")).focus();
    }
  }
  updateListStates();
}

/** After a 409/404: tell the user and re-read list and counts. */
function reloadAfterConflict(message) {
  showGlobalError(message);
  state.editingId = null;
  loadTasks({ reset: true });
  refreshStats();
}

// ---- writes -----------------------------------------------------------------------------------------

async function onAddTask(event) {
  event.preventDefault();
  const input = $("#new-task-title");
  const errorEl = $("#new-task-error");
  const button = $("#add-task");
  const title = input.value.trim();
  setFieldError(input, errorEl, null);
  showGlobalError(null);
  if (button.disabled) return;
  button.disabled = true;
  try {
    // Validation (empty, too long) is the server's: its message is shown under the input.
    const task = await api.createTask(title);
    input.value = "";
    upsertTask(task, { prepend: true });
    announce(`Added ${quoted(task.title)}.`);
    refreshStats();
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 422) {
      setFieldError(input, errorEl, err.message || "Please enter a title.");
    } else {
      handleCommonError(err);
    }
  } finally {
    button.disabled = false;
    if (state.view === "tasks") input.focus();
  }
}

async function onToggle(checkbox) {
  const li = checkbox.closest("[data-testid=task-item]");
  const id = li.dataset.taskId;
  const task = findTask(id);
  if (!task) return;
  const done = checkbox.checked;
  if (state.pending.has(id)) {
    checkbox.checked = task.done; // one write per task at a time
    return;
  }
  showGlobalError(null);
  state.pending.add(id);
  li.setAttribute("aria-busy", "true");
  try {
    const updated = await api.updateTask(id, { done }, task.version);
    upsertTask(updated, { keepShown: true });
    announce(done ? `Completed ${quoted(updated.title)}.` : `Reopened ${quoted(updated.title)}.`);
    refreshStats();
  } catch (err) {
    checkbox.checked = task.done;
    if (err instanceof api.ApiError && err.status === 409) {
      reloadAfterConflict(`${quoted(task.title)} was changed elsewhere. The list has been reloaded; please try again.`);
    } else if (err instanceof api.ApiError && err.status === 404) {
      reloadAfterConflict(`${quoted(task.title)} no longer exists (it was deleted elsewhere).`);
    } else {
      handleCommonError(err);
    }
  } finally {
    state.pending.delete(id);
    li.removeAttribute("aria-busy");
  }
}

function startEdit(li) {
  const id = li.dataset.taskId;
  const task = findTask(id);
  if (!task || state.pending.has(id)) return;
  if (state.editingId && state.editingId !== id) cancelEdit(rowFor(state.editingId), { focus: false });
  if (li.classList.contains("is-editing")) {
    li.querySelector("[data-testid=task-title-input]").focus();
    return;
  }
  state.editingId = id;
  renderEditForm(li, task);
}

function cancelEdit(li, { focus = true } = {}) {
  if (!li) return;
  const task = findTask(li.dataset.taskId);
  if (state.editingId === li.dataset.taskId) state.editingId = null;
  if (!task) return;
  restoreTaskView(li, task);
  if (focus) li.querySelector("[data-testid=task-edit]").focus();
}

async function saveEdit(li) {
  const id = li.dataset.taskId;
  const task = findTask(id);
  if (!task || state.pending.has(id)) return;
  const input = li.querySelector("[data-testid=task-title-input]");
  const errorEl = li.querySelector("[data-testid=task-error]");
  const title = input.value.trim();
  setFieldError(input, errorEl, null);
  showGlobalError(null);
  if (title === task.title) {
    cancelEdit(li);
    return;
  }
  state.pending.add(id);
  li.setAttribute("aria-busy", "true");
  try {
    const updated = await api.updateTask(id, { title }, task.version);
    const idx = state.tasks.findIndex((t) => t.id === id);
    if (idx >= 0) state.tasks[idx] = updated;
    state.editingId = null;
    restoreTaskView(li, updated);
    li.querySelector("[data-testid=task-edit]").focus();
    announce(`Renamed to ${quoted(updated.title)}.`);
    refreshActivity();
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 422) {
      setFieldError(input, errorEl, err.message || "Please enter a title.");
      input.focus();
    } else if (err instanceof api.ApiError && err.status === 409) {
      reloadAfterConflict(`${quoted(task.title)} was changed elsewhere. The list has been reloaded; please try again.`);
    } else if (err instanceof api.ApiError && err.status === 404) {
      reloadAfterConflict(`${quoted(task.title)} no longer exists (it was deleted elsewhere).`);
    } else {
      handleCommonError(err);
    }
  } finally {
    state.pending.delete(id);
    li.removeAttribute("aria-busy");
  }
}

async function onDelete(li) {
  const id = li.dataset.taskId;
  const task = findTask(id);
  if (!task || state.pending.has(id)) return;
  showGlobalError(null);
  state.pending.add(id);
  li.setAttribute("aria-busy", "true");
  try {
    await api.deleteTask(id);
    removeTaskFromList(id);
    refreshStats();
    showToast(`Deleted ${quoted(task.title)}`, { actionLabel: "Undo", onAction: () => undoDelete(task) });
    announce(`Deleted ${quoted(task.title)}. Undo is available in the notification.`);
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 404) {
      removeTaskFromList(id); // already gone: that is what the user wanted
      refreshStats();
    } else {
      handleCommonError(err);
    }
  } finally {
    state.pending.delete(id);
    li.removeAttribute("aria-busy");
  }
}

async function undoDelete(task) {
  showGlobalError(null);
  try {
    const restored = await api.restoreTask(task.id);
    upsertTask(restored);
    announce(`Restored ${quoted(restored.title)}.`);
    refreshStats();
  } catch (err) {
    if (err instanceof api.ApiError && (err.status === 409 || err.status === 404)) {
      // 409: restored already (another tab); 404: gone for this user. Show what is true now.
      reloadAfterConflict(`${quoted(task.title)} could not be restored: ${err.message}`);
    } else {
      handleCommonError(err);
    }
  }
}

// ---- wiring -----------------------------------------------------------------------------------------

function init() {
  initToast();
  initHistory(handleCommonError);
  $("#auth-view form").addEventListener("submit", onAuthSubmit);
  $("#mode-login").addEventListener("click", () => {
    history.replaceState(null, "", window.location.pathname);
    setAuthMode("login");
    $("#email").focus();
  });
  $("#mode-register").addEventListener("click", () => {
    history.replaceState(null, "", "#register");
    setAuthMode("register");
    $("#email").focus();
  });
  window.addEventListener("hashchange", () => {
    if (state.view === "auth") setAuthMode(window.location.hash === "#register" ? "register" : "login");
  });

  $("#logout").addEventListener("click", logout);
  initSettings(handleCommonError);
  $("#new-task-form").addEventListener("submit", onAddTask);
  for (const f of ["all", "open", "done"]) {
    $(`#filter-${f}`).addEventListener("click", () => setFilter(f));
  }
  $("#load-more").addEventListener("click", () => loadTasks({ reset: false }));
  $("#list-retry").addEventListener("click", () => loadTasks({ reset: true }));

  const list = $("#task-list");
  list.addEventListener("change", (e) => {
    if (e.target.matches("[data-testid=task-toggle]")) onToggle(e.target);
  });
  list.addEventListener("click", (e) => {
    const li = e.target.closest("[data-testid=task-item]");
    if (!li) return;
    const action = e.target.closest("[data-action]")?.dataset.action;
    if (action === "edit") startEdit(li);
    else if (action === "delete") onDelete(li);
    else if (action === "history") openHistory(findTask(li.dataset.taskId), e.target.closest("button"));
    else if (action === "cancel-edit") cancelEdit(li);
    else if (e.target.closest("[data-testid=task-title]")) startEdit(li);
  });
  list.addEventListener("submit", (e) => {
    e.preventDefault();
    const li = e.target.closest("[data-testid=task-item]");
    if (li) saveEdit(li);
  });
  list.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && e.target.matches("[data-testid=task-title-input]")) {
      e.preventDefault();
      cancelEdit(e.target.closest("[data-testid=task-item]"));
    }
  });

  if (api.getToken()) {
    enterApp();
  } else if (api.hasExpiredToken()) {
    api.clearSession();
    showAuth(SESSION_EXPIRED, "error");
  } else {
    showAuth();
  }
}

init();
