/* The card drawer: the card's fields and facts, its dependencies (add, remove, pick a card by text),
 * opening and closing. */
import * as approvals from "../approvals.js";
import { pullRequest } from "./cards.js";
import { LABELS, PRIORITY_WORDS, config, state } from "./config.js";
import { loadComments, loadHistory, loadRoles, loadTurns } from "./drawer_panels.js";
import { focusCard } from "./keyboard.js";
import { mergeCard } from "./moves.js";
import { render } from "./render.js";
import { el } from "../dom.js";
import { api, message, priorityText, safeMarkup } from "./text.js";

export var drawer = document.getElementById("drawer");
export var drawerForm = document.getElementById("drawer-form");
var lastFocus = null;

function cardLabel(id) {
  var card = state.cards.get(id);
  return "#" + id + (card ? " " + card.title : "");
}

export function fillDrawer(card, overwrite) {
  document.getElementById("drawer-title").textContent = "#" + card.id + " " + card.title;
  var facts = document.getElementById("drawer-facts");
  facts.textContent = "";
  facts.appendChild(el("span", "badge status-" + card.status, LABELS[card.status] || card.status));
  if (card.wait_reason) {
    facts.appendChild(el("span", "badge blocked", "wait reason: " + card.wait_reason));
  }
  if (card.last_worked_by_seat) {
    facts.appendChild(el("span", "badge seat", "last worked by " + card.last_worked_by_seat));
  }
  if (card.last_verification) {
    facts.appendChild(el("span", "badge verify-" + card.last_verification, "verification " + card.last_verification));
  }
  var pr = pullRequest(card);
  if (pr) {
    var prNode = el(pr.url ? "a" : "span", "badge pr", "pull request #" + pr.number + (pr.state ? " (" + pr.state + ")" : ""));
    if (pr.url) {
      prNode.href = pr.url;
      prNode.rel = "noopener noreferrer";
    }
    facts.appendChild(prNode);
  }
  if (Number(card.review_cycle) > 0) {
    facts.appendChild(el("span", "badge review-cycle", "review cycle " + Number(card.review_cycle)));
  }
  var agent = state.active.get(card.id);
  if (agent) {
    facts.appendChild(el("span", "badge agent", "agent working: " + agent.seat));
  }
  var view = document.getElementById("d-description-view");
  view.textContent = "";
  if (card.description_html) {
    view.appendChild(safeMarkup(card.description_html));
  } else {
    view.appendChild(el("p", "muted", "No description."));
  }
  fillDeps(card);
  // Never throw away what the viewer is typing: a live update refreshes the form only when untouched.
  if (overwrite || !state.drawerDirty) {
    state.drawerDirty = false;
    document.getElementById("d-title").value = card.title;
    document.getElementById("d-description").value = card.description || "";
    document.getElementById("d-requirements").value = card.requirements || "";
    document.getElementById("d-acceptance").value = card.acceptance_criteria || "";
    var word = priorityText(card.priority);
    document.getElementById("d-priority").value = PRIORITY_WORDS[word] === Number(card.priority) ? word : String(card.priority);
    document.getElementById("d-seat").value = card.seat || "";
    document.getElementById("d-labels").value = (card.labels || []).join(", ");
  }
  var readOnly = !config.canAct;
  drawerForm.querySelectorAll("input, textarea").forEach(function (input) {
    input.readOnly = readOnly;
  });
}

/* Dependencies of the open card: the list with Remove buttons, and the choices for adding one. */
function fillDeps(card) {
  var list = document.getElementById("drawer-deps");
  list.textContent = "";
  var ids = (card.depends_on || []).slice();
  ids.forEach(function (depId) {
    var other = state.cards.get(depId);
    var status = other ? other.status : state.depStatus.get(depId);
    var item = el("li", "dep-row");
    item.dataset.dep = String(depId);
    var open = el("button", "link-button", cardLabel(depId));
    open.type = "button";
    open.dataset.open = String(depId);
    open.setAttribute("aria-label", "Open card " + cardLabel(depId));
    item.appendChild(open);
    if (status) {
      item.appendChild(el("span", "badge status-" + status, LABELS[status] || status));
    }
    if (config.canAct) {
      var remove = el("button", "secondary small-button", "Remove");
      remove.type = "button";
      remove.dataset.remove = String(depId);
      remove.setAttribute("aria-label", "Remove the dependency on " + cardLabel(depId));
      item.appendChild(remove);
    }
    list.appendChild(item);
  });
  if (!ids.length) {
    list.appendChild(el("li", "muted", "No dependencies."));
  }
  var choices = document.getElementById("dep-choices");
  if (choices) {
    choices.textContent = "";
    Array.from(state.cards.values())
      .filter(function (other) {
        return other.id !== card.id && ids.indexOf(other.id) < 0;
      })
      .slice(0, 1000)
      .forEach(function (other) {
        var option = el("option");
        option.value = "#" + other.id + " " + other.title;
        choices.appendChild(option);
      });
  }
}

function loadDependents(id) {
  return api("GET", config.api.cards + id + "/dependencies/")
    .then(function (data) {
      if (state.openCard !== id) {
        return;
      }
      var node = document.getElementById("drawer-dependents");
      node.textContent = data.dependents && data.dependents.length ? "Cards waiting on this one: " + data.dependents.map(cardLabel).join(", ") + "." : "";
    })
    .catch(function () {
      return null;
    });
}

/* "#12", "12" or "#12 Some title" from the add box; or a title matching exactly one card. */
function pickCard(text) {
  var match = /^\s*#?(\d+)\b/.exec(text);
  if (match) {
    return Number(match[1]);
  }
  var wanted = text.trim().toLowerCase();
  var found = Array.from(state.cards.values()).filter(function (card) {
    return card.title.toLowerCase() === wanted;
  });
  return found.length === 1 ? found[0].id : null;
}

var depForm = document.getElementById("dep-form");

export function openDrawer(id) {
  if (!drawer.hidden && state.openCard === id) {
    return;
  }
  if (drawer.hidden) {
    lastFocus = document.activeElement;
  }
  state.openCard = id;
  state.drawerDirty = false;
  drawer.hidden = false;
  drawer.dataset.card = String(id);
  ["drawer-error", "drawer-run-link", "drawer-comments", "drawer-history", "drawer-turns", "drawer-deps", "drawer-dependents", "dep-error", "prompt-view"].forEach(function (name) {
    var node = document.getElementById(name);
    if (node) {
      node.textContent = "";
    }
  });
  var summary = state.cards.get(id);
  if (summary) {
    document.getElementById("drawer-title").textContent = "#" + id + " " + summary.title;
  }
  api("GET", config.api.cards + id + "/")
    .then(function (card) {
      if (state.openCard === id) {
        fillDrawer(card, true);
        drawer.dataset.loaded = String(id);
        document.getElementById("d-title").focus();
      }
    })
    .catch(function (error) {
      document.getElementById("drawer-error").textContent = error.message;
    });
  loadComments(id);
  loadHistory(id);
  loadTurns(id);
  document.dispatchEvent(new CustomEvent("orket:card-opened", { detail: { project: config.project, card: id } })); // card_diff.js, file_browser.js
  loadDependents(id);
  approvals.drawer(id, config.canAct);
  loadRoles(summary ? summary.epic : config.epic);
}

export function closeDrawer() {
  if (drawer.hidden) {
    return;
  }
  drawer.hidden = true;
  delete drawer.dataset.loaded;
  state.openCard = null;
  if (lastFocus && document.body.contains(lastFocus)) {
    lastFocus.focus();
  } else if (state.focused) {
    focusCard(state.focused);
  }
}

/* The drawer's dependency list and form. */
export function wireDrawer() {
  if (depForm) {
    depForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var id = state.openCard;
      var input = document.getElementById("dep-input");
      var errorNode = document.getElementById("dep-error");
      errorNode.textContent = "";
      var target = pickCard(input.value);
      if (!id) {
        return;
      }
      if (!target) {
        errorNode.textContent = "Choose a card from the list or type its number, such as #12.";
        return;
      }
      api("POST", config.api.cards + id + "/dependencies/", { depends_on: target })
        .then(function (card) {
          input.value = "";
          mergeCard(card);
          fillDeps(card);
          render();
          message("Card #" + id + " now waits on #" + target + ".", "ok");
          loadHistory(id);
        })
        .catch(function (failure) {
          errorNode.textContent = failure.message;
        });
    });
  }

  document.getElementById("drawer-deps").addEventListener("click", function (event) {
    var id = state.openCard;
    var removeId = event.target.dataset ? Number(event.target.dataset.remove) : 0;
    var openId = event.target.dataset ? Number(event.target.dataset.open) : 0;
    if (openId) {
      if (state.cards.has(openId)) {
        openDrawer(openId);
      }
      return;
    }
    if (!removeId || !id) {
      return;
    }
    var errorNode = document.getElementById("dep-error");
    errorNode.textContent = "";
    api("DELETE", config.api.cards + id + "/dependencies/" + removeId + "/")
      .then(function () {
        return api("GET", config.api.cards + id + "/");
      })
      .then(function (card) {
        mergeCard(card);
        fillDeps(card);
        render();
        message("Card #" + id + " no longer waits on #" + removeId + ".", "ok");
        loadHistory(id);
      })
      .catch(function (failure) {
        errorNode.textContent = failure.message;
      });
  });
}
