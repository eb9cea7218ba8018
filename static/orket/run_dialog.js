/* The Run dialog of the board: choose the model profile and how many cards run at a time, see the
   estimated token budget. `choose(epicId)` resolves with the body for
   POST /api/epics/{id}/runs/ ({model_profile?, max_parallel}) or null when the person cancels.
   The options (profiles with the default marked and unreachable ones flagged) come from
   GET /api/epics/{id}/run-options/, asked for when the dialog opens, never while the page loads. */

import { request } from "./api.js";
import { el } from "./dom.js";

function numberText(value) {
  return Number(value).toLocaleString("en-US");
}

function profileLabel(profile) {
  let text = profile.name + " (" + profile.provider + ", " + profile.model + ")";
  if (profile.is_default) {
    text += " - default";
  }
  if (profile.reachable === false) {
    text += " - not reachable";
  }
  return text;
}

function loadOptions(epicId) {
  return request("GET", "/api/epics/" + epicId + "/run-options/").then(function (response) {
    return response.json().then(function (data) {
      if (!response.ok) {
        throw new Error(data.detail || "HTTP " + response.status);
      }
      return data;
    });
  });
}

function build() {
  const dialog = el("dialog", "run-dialog");
  dialog.id = "run-dialog";
  dialog.setAttribute("aria-labelledby", "run-dialog-title");
  const form = el("form");
  form.method = "dialog";
  const title = el("h2", null, "Run this epic");
  title.id = "run-dialog-title";
  const status = el("p", "muted", "Asking the model servers...");
  status.id = "run-dialog-status";
  status.setAttribute("aria-live", "polite");

  const profileLabelNode = el("label", null, "Model profile");
  profileLabelNode.htmlFor = "run-profile";
  const profile = el("select");
  profile.id = "run-profile";
  const profileNote = el("p", "muted");
  profileNote.id = "run-profile-note";

  const parallelLabel = el("label", null, "Cards at a time");
  parallelLabel.htmlFor = "run-parallel";
  const parallel = el("input");
  parallel.type = "number";
  parallel.id = "run-parallel";
  parallel.min = "1";
  parallel.required = true;
  const parallelNote = el("p", "muted");
  parallelNote.id = "run-parallel-note";

  const budget = el("p", "run-budget");
  budget.id = "run-budget";
  const error = el("p", "error");
  error.id = "run-error";
  error.setAttribute("role", "alert");

  const buttons = el("div", "drawer-buttons");
  const start = el("button", null, "Start run");
  start.type = "submit";
  start.id = "run-start";
  start.disabled = true;
  const cancel = el("button", "secondary", "Cancel");
  cancel.type = "button";
  cancel.id = "run-cancel";
  buttons.append(start, " ", cancel);

  form.append(title, status, profileLabelNode, profile, profileNote, parallelLabel, parallel, parallelNote, budget, error, buttons);
  dialog.appendChild(form);
  document.body.appendChild(dialog);
  return { dialog, form, status, profile, profileNote, parallel, parallelNote, budget, error, start, cancel };
}

let parts = null;

function fill(options) {
  const p = parts;
  p.profile.replaceChildren();
  const automatic = el("option", null, "Default: " + options.default_profile + " (" + options.default_reason + ")");
  automatic.value = "";
  p.profile.appendChild(automatic);
  options.profiles.forEach(function (profile) {
    const option = el("option", null, profileLabel(profile));
    option.value = profile.name;
    option.dataset.reachable = String(profile.reachable);
    option.dataset.default = String(profile.is_default);
    p.profile.appendChild(option);
  });
  const unreachable = options.profiles.filter(function (profile) {
    return profile.reachable === false;
  });
  let note = "";
  if (options.seats_with_profiles.length) {
    note += "Without a choice, these seats use their own model: " +
      options.seats_with_profiles.map(function (s) { return s.seat + " (" + s.profile + ")"; }).join(", ") + ". ";
  }
  if (unreachable.length) {
    note += "Not reachable now: " + unreachable.map(function (s) { return s.name; }).join(", ") + ".";
  }
  p.profileNote.textContent = note;
  p.parallel.max = String(options.parallel.maximum);
  p.parallel.value = String(options.parallel.default);
  p.parallelNote.textContent = "1 to " + options.parallel.maximum + ", from " + options.parallel.source + ".";
  let text = "Estimated token budget: up to " + numberText(options.estimated_tokens) + " tokens (" +
    numberText(options.card_token_budget) + " a card \u00d7 " + options.cards + " cards to do";
  if (options.card_token_budget * options.cards > options.run_token_budget) {
    text += ", capped by the run's budget of " + numberText(options.run_token_budget);
  }
  p.budget.textContent = text + ").";
  p.status.textContent = "";
  p.start.disabled = false;
}

function choose(epicId) {
  if (!parts) {
    parts = build();
  }
  const p = parts;
  p.error.textContent = "";
  p.start.disabled = true;
  p.status.textContent = "Asking the model servers...";
  loadOptions(epicId).then(fill, function (problem) {
    p.status.textContent = "";
    p.error.textContent = "The run options could not be loaded: " + problem.message;
  });
  p.dialog.showModal();
  return new Promise(function (resolve) {
    function finish(value) {
      p.form.removeEventListener("submit", onSubmit);
      p.cancel.removeEventListener("click", onCancel);
      p.dialog.removeEventListener("cancel", onCancel);
      p.dialog.close();
      resolve(value);
    }
    function onSubmit(event) {
      event.preventDefault();
      const value = Number(p.parallel.value);
      if (!p.parallel.checkValidity() || !Number.isInteger(value)) {
        p.error.textContent = "Cards at a time must be a whole number from 1 to " + p.parallel.max + ".";
        return;
      }
      const body = { max_parallel: value };
      if (p.profile.value) {
        body.model_profile = p.profile.value;
      }
      finish(body);
    }
    function onCancel(event) {
      event.preventDefault();
      finish(null);
    }
    p.form.addEventListener("submit", onSubmit);
    p.cancel.addEventListener("click", onCancel);
    p.dialog.addEventListener("cancel", onCancel);
  });
}

export { choose };
