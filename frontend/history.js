// Task history (a drawer for one task) and the activity view (the user's recent events across
// tasks), both read from the query API's history endpoints with read-your-writes (api.js).
// Everything is rendered with textContent (titles can never inject markup).

import * as api from "./api.js";
import { $, formatDate, quoted, show } from "./ui.js";

const ACTIVITY_PAGE = 20;

let onError = (err) => { throw err; };
let historySeq = 0;
const activity = { cursor: null, seq: 0 };

/** What an event did, in words; `title` names the task where the event itself does not. */
function describe(item, title) {
  const changes = item.changes || {};
  const named = title ? ` ${quoted(title)}` : "";
  switch (item.type) {
    case "task.created": return `Created ${quoted(changes.title ?? title ?? "")}`;
    case "task.renamed": return `Renamed to ${quoted(changes.title ?? "")}`;
    case "task.completed": return `Completed${named}`;
    case "task.reopened": return `Reopened${named}`;
    case "task.deleted": return `Deleted${named}`;
    case "task.restored": return `Restored${named}`;
    default: return `${item.type}${named}`; // a type this page does not know yet
  }
}

function eventItem(item, testId, title) {
  const li = document.createElement("li");
  li.className = "event";
  li.dataset.testid = testId;
  li.dataset.type = item.type;
  li.dataset.taskId = item.task_id;
  const what = document.createElement("span");
  what.className = "event-what";
  what.textContent = describe(item, title);
  const when = document.createElement("time");
  when.className = "event-when";
  when.dateTime = item.occurred_at;
  when.textContent = formatDate(item.occurred_at);
  li.append(what, when);
  return li;
}

// ---- one task's history (drawer) ----------------------------------------------------------------

export async function openHistory(task, opener = null) {
  if (!task) return;
  const seq = ++historySeq;
  const panel = $("#history-panel");
  const list = $("#history-list");
  $("#history-title").textContent = `History of ${quoted(task.title)}`;
  list.replaceChildren();
  $("#history-state").textContent = "Loading…";
  show($("#history-state"), true);
  panel.hidden = false;
  panel.returnFocus = opener;
  $("#history-close").focus();
  try {
    const { data } = await api.getTaskHistory(task.id);
    if (seq !== historySeq) return;
    const items = Array.isArray(data?.items) ? data.items : [];
    list.replaceChildren(...items.map((item) => eventItem(item, "history-item", null)));
    show($("#history-state"), false);
  } catch (err) {
    if (seq !== historySeq) return;
    $("#history-state").textContent = err instanceof api.ApiError ? err.message : "Could not load the history.";
    if (!(err instanceof api.ApiError) || err.status === 401) onError(err);
  }
}

export function closeHistory() {
  historySeq += 1;
  const panel = $("#history-panel");
  if (panel.hidden) return;
  panel.hidden = true;
  const back = panel.returnFocus;
  panel.returnFocus = null;
  if (back && back.isConnected) back.focus();
}

// ---- activity view --------------------------------------------------------------------------------

async function loadActivity({ reset }) {
  const seq = reset ? ++activity.seq : activity.seq;
  if (reset) {
    activity.cursor = null;
    $("#activity-list").replaceChildren();
  }
  show($("#activity-empty"), false);
  show($("#activity-more"), false);
  try {
    const { data } = await api.listActivity({ cursor: activity.cursor, limit: ACTIVITY_PAGE });
    if (seq !== activity.seq) return;
    const items = Array.isArray(data?.items) ? data.items : [];
    $("#activity-list").append(...items.map((i) => eventItem(i, "activity-item", i.task_title)));
    activity.cursor = data?.next_cursor ?? null;
    show($("#activity-more"), Boolean(activity.cursor));
    show($("#activity-empty"), $("#activity-list").children.length === 0);
  } catch (err) {
    if (seq === activity.seq) onError(err);
  }
}

function setActivityOpen(open) {
  $("#activity-toggle").setAttribute("aria-expanded", String(open));
  show($("#activity-view"), open);
  if (open) loadActivity({ reset: true });
}

/** Re-reads the activity if it is on screen (after a write). */
export function refreshActivity() {
  if (!$("#activity-view").hidden) loadActivity({ reset: true });
}

/** Closes both (e.g. on log out). */
export function resetHistoryViews() {
  closeHistory();
  activity.seq += 1;
  setActivityOpen(false);
}

/** handleError(err): the app's common handling of a failed authenticated call. */
export function initHistory(handleError) {
  onError = handleError;
  $("#history-close").addEventListener("click", closeHistory);
  $("#history-panel").addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeHistory();
  });
  $("#activity-toggle").addEventListener("click", () => {
    setActivityOpen($("#activity-toggle").getAttribute("aria-expanded") !== "true");
  });
  $("#activity-more").addEventListener("click", () => loadActivity({ reset: false }));
}
