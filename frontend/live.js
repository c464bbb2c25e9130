// Live updates: the user's own changes, pushed by GET /api/stream (Server-Sent Events), so every
// open tab and device stays in step without reloading. Read with fetch streaming rather than
// EventSource so the token travels in the Authorization header — never in a URL, so never in an
// access log. After a drop it reconnects with Last-Event-ID (the server then sends exactly what
// was missed), backing off up to 30 s.

import * as api from "./api.js";

const MAX_BACKOFF_MS = 30000;

/** Splits a text stream into SSE messages: {id, event, data} (comments and retry: skipped). */
async function readMessages(body, onMessage, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = { event: "message", data: "" };
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") message.data += (message.data ? "\n" : "") + text;
          else if (field === "id" || field === "event") message[field] = text;
        }
        if (message.id !== undefined) onMessage(message);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * Starts listening; returns a function that stops it. Handlers:
 *   onReady()            the stream runs from now: (re)load what is shown
 *   onTask(task)         a task's new state (created, changed or restored)
 *   onTaskDeleted(id)    a task was deleted
 *   onSessionExpired()   the token is no longer accepted
 */
export function startLiveUpdates({ onReady, onTask, onTaskDeleted, onSessionExpired }) {
  const controller = new AbortController();
  const { signal } = controller;
  let lastEventId = null;
  let backoff = 1000;

  const dispatch = (message) => {
    lastEventId = message.id;
    if (message.event === "ready") onReady();
    else if (message.event === "task") onTask(JSON.parse(message.data));
    else if (message.event === "task_deleted") onTaskDeleted(JSON.parse(message.data).id);
  };

  (async () => {
    while (!signal.aborted) {
      const token = api.getToken();
      if (!token) return;
      try {
        const headers = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
        if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
        const response = await fetch("/api/stream", { headers, signal, cache: "no-store" });
        if (response.status === 401) {
          onSessionExpired();
          return;
        }
        if (response.ok && response.body) {
          backoff = 1000;
          await readMessages(response.body, dispatch, signal);
        }
      } catch (err) {
        if (signal.aborted) return;
        if (!(err instanceof TypeError)) console.error(err); // TypeError: network failure
      }
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  })();
  return () => controller.abort();
}
