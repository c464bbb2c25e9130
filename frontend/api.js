// HTTP client for the gateway's /api (same origin): token storage, error normalisation and
// read-your-writes (X-Event-Position from writes -> X-Min-Position on later reads).

const TOKEN_KEY = "todo.token";
const TOKEN_EXPIRES_KEY = "todo.tokenExpiresAt";
const POSITION_KEY = "todo.minPosition";

/** An HTTP or network failure. `status` is 0 for network errors. */
export class ApiError extends Error {
  constructor(status, message, { fieldErrors = [], detail = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    /** [{field, message}] from a FastAPI 422 body (field = last element of loc). */
    this.fieldErrors = fieldErrors;
    this.detail = detail;
  }
  get isNetwork() { return this.status === 0; }
}

/** Thrown for a 401 on an authenticated call; the token has already been cleared. */
export class SessionExpiredError extends ApiError {
  constructor() {
    super(401, "Your session has expired, please log in again");
    this.name = "SessionExpiredError";
  }
}

// ---- token -------------------------------------------------------------------------------------

function storageGet(key) {
  try { return window.localStorage.getItem(key); } catch { return null; }
}
function storageSet(key, value) {
  try {
    if (value === null || value === undefined) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, String(value));
  } catch { /* storage unavailable (private mode): keep working for this page */ }
}

export function getToken() {
  const token = storageGet(TOKEN_KEY);
  if (!token) return null;
  const expiresAt = Number(storageGet(TOKEN_EXPIRES_KEY) || 0);
  if (expiresAt && Date.now() >= expiresAt) return null;
  return token;
}

/** True when a token is stored but known to be past its expiry. */
export function hasExpiredToken() {
  return Boolean(storageGet(TOKEN_KEY)) && getToken() === null;
}

function setToken(token, expiresInSeconds) {
  storageSet(TOKEN_KEY, token);
  const secs = Number(expiresInSeconds);
  storageSet(TOKEN_EXPIRES_KEY, Number.isFinite(secs) && secs > 0 ? Date.now() + secs * 1000 : null);
}

export function clearSession() {
  storageSet(TOKEN_KEY, null);
  storageSet(TOKEN_EXPIRES_KEY, null);
  storageSet(POSITION_KEY, null);
  minPosition = 0;
}

// ---- read-your-writes ----------------------------------------------------------------------------

let minPosition = Number(storageGet(POSITION_KEY) || 0) || 0;

function notePosition(response) {
  const raw = response.headers.get("X-Event-Position");
  if (raw === null) return;
  const pos = Number.parseInt(raw, 10);
  if (Number.isFinite(pos) && pos > minPosition) {
    minPosition = pos;
    storageSet(POSITION_KEY, pos);
  }
}

export function currentMinPosition() { return minPosition; }

// ---- core request ----------------------------------------------------------------------------------

function messageForStatus(status) {
  if (status === 0) return "Can't reach the server. Check your connection and try again.";
  if (status === 404) return "Not found.";
  if (status === 429) return "Too many requests. Please wait a moment and try again.";
  if (status >= 500) return `The server had a problem (${status}). Please try again.`;
  return `Request failed (${status}).`;
}

async function parseBody(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try { return JSON.parse(text); } catch { return null; }
  }
  return null;
}

function toApiError(status, body) {
  const detail = body && typeof body === "object" ? body.detail : undefined;
  if (Array.isArray(detail)) {
    const fieldErrors = detail.map((d) => {
      const loc = Array.isArray(d?.loc) ? d.loc : [];
      const last = loc.length ? loc[loc.length - 1] : null;
      // ["body"] alone (a model-level error) has no field of its own.
      const field = typeof last === "string" && last !== "body" ? last : null;
      return { field, message: String(d?.msg ?? "Invalid value") };
    });
    return new ApiError(status, fieldErrors.map((e) => e.message).join(" "), { fieldErrors, detail });
  }
  if (typeof detail === "string" && detail) return new ApiError(status, detail, { detail });
  return new ApiError(status, messageForStatus(status));
}

/**
 * Sends a request to /api + path. Options: method, body (JSON), auth (send the bearer token,
 * default true), read (send X-Min-Position), headers.
 * Returns {status, data, stale, position}; throws ApiError / SessionExpiredError.
 */
async function request(path, { method = "GET", body, auth = true, read = false, headers = {} } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (auth) {
    const token = getToken();
    if (!token) {
      clearSession();
      throw new SessionExpiredError();
    }
    h.Authorization = `Bearer ${token}`;
  }
  if (read && minPosition > 0) h["X-Min-Position"] = String(minPosition);

  let response;
  try {
    response = await fetch(`/api${path}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, messageForStatus(0));
  }

  const data = await parseBody(response);
  if (response.status === 401 && auth) {
    clearSession();
    throw new SessionExpiredError();
  }
  if (!response.ok) throw toApiError(response.status, data);
  notePosition(response);
  return {
    status: response.status,
    data,
    stale: (response.headers.get("X-Stale") || "").toLowerCase() === "true",
  };
}

// ---- endpoints -------------------------------------------------------------------------------------

/** timezone: the browser's IANA zone (optional; the server defaults to UTC). */
export async function register(email, password, timezone) {
  const body = timezone ? { email, password, timezone } : { email, password };
  return (await request("/auth/register", { method: "POST", body, auth: false })).data;
}

export async function login(email, password) {
  const { data } = await request("/auth/login", { method: "POST", body: { email, password }, auth: false });
  if (!data || !data.access_token) throw new ApiError(500, "Unexpected answer from the server.");
  setToken(data.access_token, data.expires_in);
  return data;
}

/** @returns {Promise<{data: {id, email, created_at, stats: {total, done, undone}}, stale: boolean}>} */
export function getMe() {
  return request("/me", { read: true });
}

/** filter: "all" | "open" | "done". @returns {Promise<{data: {items, next_cursor}, stale}>} */
export function listTasks({ filter = "all", cursor = null, limit = 50 } = {}) {
  const params = new URLSearchParams();
  if (filter === "open") params.set("done", "false");
  if (filter === "done") params.set("done", "true");
  params.set("limit", String(limit));
  if (cursor) params.set("cursor", cursor);
  return request(`/tasks?${params}`, { read: true });
}

export function getTask(id) {
  return request(`/tasks/${encodeURIComponent(id)}`, { read: true });
}

export async function createTask(title) {
  return (await request("/tasks", { method: "POST", body: { title } })).data;
}

/** changes: {title?, done?}; version: optimistic-concurrency check via If-Match (409 on conflict). */
export async function updateTask(id, changes, version) {
  const headers = {};
  if (version !== undefined && version !== null) headers["If-Match"] = String(version);
  return (await request(`/tasks/${encodeURIComponent(id)}`, { method: "PATCH", body: changes, headers })).data;
}

/** changes: {timezone?, digest_enabled?}. @returns {Promise<{id, timezone, digest_enabled}>} */
export async function updatePreferences(changes) {
  return (await request("/me", { method: "PATCH", body: changes })).data;
}

export async function deleteTask(id) {
  await request(`/tasks/${encodeURIComponent(id)}`, { method: "DELETE" });
}

/** Undo a delete: the same task (same id) comes back. 409 if it is not deleted. */
export async function restoreTask(id) {
  return (await request(`/tasks/${encodeURIComponent(id)}/restore`, { method: "POST" })).data;
}

/** @returns {Promise<{data: {items: [{type, task_id, occurred_at, position, version, changes}]}, stale}>} */
export function getTaskHistory(id) {
  return request(`/tasks/${encodeURIComponent(id)}/history`, { read: true });
}

/** The user's recent task events, newest first. @returns {Promise<{data: {items, next_cursor}, stale}>} */
export function listActivity({ cursor = null, limit = 20 } = {}) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (cursor) params.set("cursor", cursor);
  return request(`/activity?${params}`, { read: true });
}
