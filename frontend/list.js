// The task list and the counts: reading them (GET /api/tasks, GET /api/me), the filter, paging,
// and putting single tasks in or out of the list as writes and live updates report them.
//
// Every read carries X-Min-Position (the highest X-Event-Position seen, see api.js), so the query
// side answers only once it has applied our own writes. A read answering X-Stale: true shows
// "Syncing…" and is re-fetched once shortly after.

import * as api from "./api.js";
import { refreshActivity } from "./history.js";
import { findTask, handleCommonError, rowFor, state, updateSyncNote } from "./state.js";
import { $, announce, renderTask, show, showGlobalError, updateTaskRow } from "./ui.js";

const PAGE_SIZE = 50;
const STALE_RETRY_MS = 1200;

const matchesFilter = (task) =>
  state.filter === "all" || (state.filter === "done" ? task.done : !task.done);

// ---- stats ------------------------------------------------------------------------------------------

export async function refreshStats({ retry = false } = {}) {
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

export function setFilter(filter, { load = true } = {}) {
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

export async function loadTasks({ reset = false, retry = false } = {}) {
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
      handleCommonError(err);
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
export function upsertTask(task, { prepend = false, keepShown = false } = {}) {
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
export function removeTaskFromList(id) {
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
export function reloadAfterConflict(message) {
  showGlobalError(message);
  state.editingId = null;
  loadTasks({ reset: true });
  refreshStats();
}

/** A change pushed by live updates (another tab or device). */
export function applyPushedTask(task) {
  const shown = findTask(task.id);
  // Our own write in flight settles the row itself; an older state never replaces a newer.
  if (state.pending.has(task.id) || (shown && shown.version >= task.version)) return;
  upsertTask(task, { keepShown: true });
  refreshStats();
}

/** A deletion pushed by live updates. */
export function applyPushedDeletion(id) {
  if (!state.pending.has(id) && findTask(id)) removeTaskFromList(id);
  refreshStats();
}

export function initList() {
  for (const f of ["all", "open", "done"]) {
    $(`#filter-${f}`).addEventListener("click", () => setFilter(f));
  }
  $("#load-more").addEventListener("click", () => loadTasks({ reset: false }));
  $("#list-retry").addEventListener("click", () => loadTasks({ reset: true }));
}
