// Writes to tasks from the task screen: add, complete / reopen, rename (inline edit), delete and
// its undo. Each goes to the command API; the row is updated from the write's response right away,
// then the counts are re-read (list.js).
//
// - One write per task at a time: the row is busy (aria-busy) until the write settles.
// - Rename and toggle send If-Match with the task's version; a 409 means the task changed elsewhere
//   (a 404: it was deleted elsewhere): the user is told and the list reloaded.
// - A task completed/reopened while the Open or Done filter is active stays in place (updated, so
//   a misclick is easy to revert and keyboard focus does not jump) until the list is reloaded:
//   clicking any filter button, including the active one, re-reads the list.
// - Delete: the task is deleted immediately (no confirmation dialog) and a toast offers Undo for
//   a few seconds. Undo restores it (POST /tasks/{id}/restore): the same task, id and creation
//   time, comes back as it was.

import * as api from "./api.js";
import { openHistory, refreshActivity } from "./history.js";
import { refreshStats, reloadAfterConflict, removeTaskFromList, upsertTask } from "./list.js";
import { findTask, handleCommonError, rowFor, state } from "./state.js";
import {
  $, announce, quoted, renderEditForm, restoreTaskView, setFieldError, showGlobalError, showToast,
} from "./ui.js";

const TITLE_REQUIRED = "Please enter a title.";

/** The row's task, or null when it is gone or already has a write in flight. */
function idleTask(li) {
  const task = findTask(li.dataset.taskId);
  return task && !state.pending.has(task.id) ? task : null;
}

/** Runs one write for a row's task; a failure goes to onError. */
async function writeRow(li, task, write, onError) {
  showGlobalError(null);
  state.pending.add(task.id);
  li.setAttribute("aria-busy", "true");
  try {
    await write();
  } catch (err) {
    onError(err);
  } finally {
    state.pending.delete(task.id);
    li.removeAttribute("aria-busy");
  }
}

/** A write refused because the task changed (409) or went (404) elsewhere: say so and re-read. */
function onChangeRefused(err, task) {
  if (err instanceof api.ApiError && err.status === 409) {
    reloadAfterConflict(`${quoted(task.title)} was changed elsewhere. The list has been reloaded; please try again.`);
  } else if (err instanceof api.ApiError && err.status === 404) {
    reloadAfterConflict(`${quoted(task.title)} no longer exists (it was deleted elsewhere).`);
  } else {
    handleCommonError(err);
  }
}

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
      setFieldError(input, errorEl, err.message || TITLE_REQUIRED);
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
  const task = findTask(li.dataset.taskId);
  if (!task) return;
  const done = checkbox.checked;
  if (!idleTask(li)) {
    checkbox.checked = task.done;
    return;
  }
  await writeRow(li, task, async () => {
    const updated = await api.updateTask(task.id, { done }, task.version);
    upsertTask(updated, { keepShown: true });
    announce(done ? `Completed ${quoted(updated.title)}.` : `Reopened ${quoted(updated.title)}.`);
    refreshStats();
  }, (err) => {
    checkbox.checked = task.done;
    onChangeRefused(err, task);
  });
}

function startEdit(li) {
  const task = idleTask(li);
  if (!task) return;
  if (state.editingId && state.editingId !== task.id) cancelEdit(rowFor(state.editingId), { focus: false });
  if (li.classList.contains("is-editing")) {
    li.querySelector("[data-testid=task-title-input]").focus();
    return;
  }
  state.editingId = task.id;
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
  const task = idleTask(li);
  if (!task) return;
  const input = li.querySelector("[data-testid=task-title-input]");
  const errorEl = li.querySelector("[data-testid=task-error]");
  const title = input.value.trim();
  setFieldError(input, errorEl, null);
  showGlobalError(null);
  if (title === task.title) {
    cancelEdit(li);
    return;
  }
  await writeRow(li, task, async () => {
    const updated = await api.updateTask(task.id, { title }, task.version);
    const idx = state.tasks.findIndex((t) => t.id === task.id);
    if (idx >= 0) state.tasks[idx] = updated;
    state.editingId = null;
    restoreTaskView(li, updated);
    li.querySelector("[data-testid=task-edit]").focus();
    announce(`Renamed to ${quoted(updated.title)}.`);
    refreshActivity();
  }, (err) => {
    if (err instanceof api.ApiError && err.status === 422) {
      setFieldError(input, errorEl, err.message || TITLE_REQUIRED);
      input.focus();
    } else {
      onChangeRefused(err, task);
    }
  });
}

async function onDelete(li) {
  const task = idleTask(li);
  if (!task) return;
  await writeRow(li, task, async () => {
    await api.deleteTask(task.id);
    removeTaskFromList(task.id);
    refreshStats();
    showToast(`Deleted ${quoted(task.title)}`, { actionLabel: "Undo", onAction: () => undoDelete(task) });
    announce(`Deleted ${quoted(task.title)}. Undo is available in the notification.`);
  }, (err) => {
    if (err instanceof api.ApiError && err.status === 404) {
      removeTaskFromList(task.id); // already gone: that is what the user wanted
      refreshStats();
    } else {
      handleCommonError(err);
    }
  });
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

/** The new-task form, and the rows' controls by delegation on the list (rows come and go). */
export function initTaskActions() {
  $("#new-task-form").addEventListener("submit", onAddTask);
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
}
