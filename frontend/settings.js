// Account settings: the timezone the daily digest follows (defaulting to the browser's) and the
// digest on/off switch. Read from GET /api/me (query API), saved with PATCH /api/me (command API);
// the write's position makes the next read wait for it (read-your-writes, see api.js).

import * as api from "./api.js";
import { $, announce, setMessage, show } from "./ui.js";

/** The browser's IANA zone, or null when it cannot tell. */
export function browserTimezone() {
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    return zone && zone !== "Etc/Unknown" ? zone : null;
  } catch {
    return null;
  }
}

function timezoneNames() {
  let names = [];
  try { names = Intl.supportedValuesOf("timeZone"); } catch { /* older browser: short list */ }
  return [...new Set(["UTC", ...names, browserTimezone()].filter(Boolean))].sort();
}

function fillTimezones(select, selected) {
  if (!select.options.length) {
    for (const name of timezoneNames()) select.append(new Option(name.replaceAll("_", " "), name));
  }
  if (![...select.options].some((o) => o.value === selected)) select.append(new Option(selected, selected));
  select.value = selected;
}

function setStatus(message, kind = "info") {
  setMessage($("#settings-status"), message, kind);
}

function setPanelOpen(open) {
  show($("#settings-view"), open);
  $("#settings-open").setAttribute("aria-expanded", String(open));
}

let onError = (err) => { throw err; };

async function open() {
  setPanelOpen(true);
  setStatus("Loading…");
  $("#settings-save").disabled = true;
  try {
    const { data } = await api.getMe();
    fillTimezones($("#settings-timezone"), data.timezone || browserTimezone() || "UTC");
    $("#settings-digest").checked = data.digest_enabled !== false;
    setStatus("");
    $("#settings-save").disabled = false;
    $("#settings-timezone").focus();
  } catch (err) {
    setStatus("Could not load your settings.", "error");
    onError(err);
  }
}

export function closeSettings() {
  setPanelOpen(false);
  setStatus("");
}

async function save(event) {
  event.preventDefault();
  const button = $("#settings-save");
  button.disabled = true;
  setStatus("Saving…");
  try {
    const saved = await api.updatePreferences({
      timezone: $("#settings-timezone").value,
      digest_enabled: $("#settings-digest").checked,
    });
    fillTimezones($("#settings-timezone"), saved.timezone);
    $("#settings-digest").checked = saved.digest_enabled;
    setStatus("Settings saved.", "success");
    announce("Settings saved");
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 422) setStatus(err.message, "error");
    else {
      setStatus("Could not save your settings.", "error");
      onError(err);
    }
  } finally {
    button.disabled = false;
  }
}

/** handleError: the app's handler for session expiry and server errors. */
export function initSettings(handleError) {
  onError = handleError;
  $("#settings-open").addEventListener("click", () => {
    if ($("#settings-view").hidden) open();
    else closeSettings();
  });
  $("#settings-close").addEventListener("click", closeSettings);
  $("#settings-form").addEventListener("submit", save);
}
