// What the screens share: the state of the signed-in session's task screen, lookups into it, and
// the common handling of a failed authenticated call (used by every module that calls the API).

import * as api from "./api.js";
import { $, setSyncing, showGlobalError } from "./ui.js";

export const state = {
  view: null, // "auth" | "tasks"
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

export const findTask = (id) => state.tasks.find((t) => t.id === id);

export function rowFor(id) {
  for (const li of $("#task-list").children) if (li.dataset.taskId === id) return li;
  return null;
}

export function updateSyncNote() {
  setSyncing(state.listStale || state.meStale);
}

// What a refused token does (back to the log-in screen) is the app's: it registers it here, so
// that this module does not import the screens that import it.
let sessionExpired = () => {};

export function onSessionExpired(handler) {
  sessionExpired = handler;
}

/** Common handling for failures of any authenticated call. Returns true when handled. */
export function handleCommonError(err) {
  if (err instanceof api.SessionExpiredError) {
    sessionExpired();
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
