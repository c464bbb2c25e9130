// The log-in screen: one form with two modes (log in / create account, see index.html), the
// server's field errors under their inputs, and registration with the browser's timezone. A new
// account is logged in straight away with the same credentials.

import * as api from "./api.js";
import { browserTimezone } from "./settings.js";
import { handleCommonError, state } from "./state.js";
import { $, announce, setFieldError, setMessage, show, showGlobalError } from "./ui.js";

let mode = "login"; // "login" | "register"

/** Outcome message of the auth screen (#auth-message); kind: "info" | "error" | "success". */
export function setAuthMessage(message, kind = "info") {
  setMessage($("#auth-message"), message, kind);
}

function clearAuthErrors() {
  setFieldError($("#email"), $("#email-error"), null);
  setFieldError($("#password"), $("#password-error"), null);
  setFieldError(null, $("#auth-form-error"), null);
}

/** The mode the page's address asks for (/#register opens the registration). */
export const modeFromAddress = () => (window.location.hash === "#register" ? "register" : "login");

export function setAuthMode(newMode, { keepMessage = false } = {}) {
  mode = newMode;
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

function showAuthError(err, emailInput, passwordInput) {
  if (!(err instanceof api.ApiError)) {
    handleCommonError(err);
  } else if (err.status === 422 && err.fieldErrors.length) {
    const fields = { email: [emailInput, $("#email-error")], password: [passwordInput, $("#password-error")] };
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
}

async function onAuthSubmit(event, onSignedIn) {
  event.preventDefault();
  const emailInput = $("#email");
  const passwordInput = $("#password");
  const submit = $("#auth-submit");
  const email = emailInput.value.trim();
  const password = passwordInput.value;
  clearAuthErrors();
  setAuthMessage("");
  showGlobalError(null);

  submit.disabled = true;
  $("#auth-view form").setAttribute("aria-busy", "true");
  try {
    const registering = mode === "register";
    if (registering) await registerWithTimezone(email, password);
    await api.login(email, password);
    passwordInput.value = "";
    if (registering) setAuthMode("login");
    setAuthMessage("");
    onSignedIn();
    if (registering) announce("Account created");
  } catch (err) {
    showAuthError(err, emailInput, passwordInput);
  } finally {
    submit.disabled = false;
    $("#auth-view form").removeAttribute("aria-busy");
  }
}

/** onSignedIn(): opens the task screen once a log-in (or a registration) succeeded. */
export function initAuth(onSignedIn) {
  $("#auth-view form").addEventListener("submit", (event) => onAuthSubmit(event, onSignedIn));
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
    if (state.view === "auth") setAuthMode(modeFromAddress());
  });
}
