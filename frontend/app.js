// TODO SPA entry point: the two screens (log in / tasks), switching between them (log in, log out,
// session expiry), live updates of the signed-in session, and the wiring of every module.
//
// Modules: auth.js (log-in screen), list.js (task list, filter, counts), task-actions.js (add,
// toggle, rename, delete + undo), state.js (shared state, common error handling), history.js
// (history drawer, activity), settings.js, live.js (/api/stream), api.js (HTTP), ui.js (DOM helpers).

import * as api from "./api.js";
import { initAuth, modeFromAddress, setAuthMessage, setAuthMode } from "./auth.js";
import { initHistory, resetHistoryViews } from "./history.js";
import {
  applyPushedDeletion, applyPushedTask, initList, loadTasks, refreshStats, setFilter,
} from "./list.js";
import { startLiveUpdates } from "./live.js";
import { closeSettings, initSettings } from "./settings.js";
import { handleCommonError, onSessionExpired, state, updateSyncNote } from "./state.js";
import { initTaskActions } from "./task-actions.js";
import { $, hideToast, initToast, show, showGlobalError } from "./ui.js";

const SESSION_EXPIRED = "Your session has expired, please log in again";

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
  setAuthMode(modeFromAddress(), { keepMessage: true });
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
    onTask: applyPushedTask,
    onTaskDeleted: applyPushedDeletion,
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

function init() {
  onSessionExpired(expireSession);
  initToast();
  initHistory(handleCommonError);
  initAuth(enterApp);
  $("#logout").addEventListener("click", logout);
  initSettings(handleCommonError);
  initList();
  initTaskActions();

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
