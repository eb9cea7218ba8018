/* The drawer's panels: comments, history, turns, the prompt preview of a role, the edit form and the
 * Run this card button. */
import { LABELS, config, state } from "./config.js";
import { closeDrawer, drawerForm, fillDrawer } from "./drawer.js";
import { refreshChoices } from "./filters.js";
import { loadRuns } from "./model.js";
import { mergeCard } from "./moves.js";
import { render } from "./render.js";
import { el } from "../dom.js";
import { api, message } from "./text.js";

function when(value) {
  var date = new Date(value);
  return isNaN(date.getTime()) ? "" : date.toLocaleString();
}

export function loadComments(id) {
  return api("GET", config.api.cards + id + "/comments/?page_size=200").then(function (data) {
    if (state.openCard !== id) {
      return;
    }
    var list = document.getElementById("drawer-comments");
    list.textContent = "";
    (data.results || []).forEach(function (comment) {
      var item = el("li", "comment");
      item.appendChild(el("span", "comment-who", (comment.author || comment.author_seat || "someone") + ", " + when(comment.created_at)));
      item.appendChild(el("div", "plain-text", comment.body));
      list.appendChild(item);
    });
    if (!list.childNodes.length) {
      list.appendChild(el("li", "muted", "No comments yet."));
    }
  });
}

function statusName(status) {
  return LABELS[status] || status || "new";
}

function historyText(row) {
  var changes = row.changes && typeof row.changes === "object" ? row.changes : {};
  if (row.event === "created") {
    return "created in " + statusName(row.to_status);
  }
  if (row.event === "transition") {
    return statusName(row.from_status) + " \u2192 " + statusName(row.to_status);
  }
  if (row.event === "decision") {
    return "decided on an agent's tool call";
  }
  if (row.event === "dependency_added") {
    return "now waits on #" + changes.depends_on;
  }
  if (row.event === "dependency_removed") {
    return "no longer waits on #" + changes.depends_on;
  }
  if (row.event === "edited") {
    var names = Array.isArray(changes) ? changes : Object.keys(changes);
    if (names.length === 1 && names[0] === "rank") {
      return "moved within " + statusName(row.to_status);
    }
    return "edited " + (names.length ? names.join(", ").replace(/_/g, " ") : "the card");
  }
  return String(row.event || "changed");
}

export function loadHistory(id) {
  return api("GET", config.api.cards + id + "/history/?page_size=200").then(function (data) {
    if (state.openCard !== id) {
      return;
    }
    var list = document.getElementById("drawer-history");
    list.textContent = "";
    (data.results || []).forEach(function (row) {
      var item = el("li", "history-row");
      item.dataset.event = row.event;
      var who = row.actor || (row.actor_seat ? row.actor_seat + (row.actor_roles && row.actor_roles.length ? " (" + row.actor_roles.join(", ") + ")" : "") : "Orket");
      item.appendChild(el("span", "history-when", when(row.created_at)));
      item.appendChild(el("span", "history-who", who));
      item.appendChild(el("span", "history-what", historyText(row)));
      var why = [row.wait_reason ? "wait reason " + row.wait_reason : "", row.reason].filter(Boolean).join(": ");
      if (why) {
        item.appendChild(el("span", "history-why", "why: " + why));
      }
      list.appendChild(item);
    });
    if (!list.childNodes.length) {
      list.appendChild(el("li", "muted", "No history yet."));
    }
  });
}

export function loadTurns(id) {
  return api("GET", config.api.cards + id + "/turns/")
    .then(function (data) {
      if (state.openCard !== id) {
        return;
      }
      var list = document.getElementById("drawer-turns");
      list.textContent = "";
      (data.results || []).forEach(function (turn) {
        var item = el("li", "turn-row");
        var link = el("a", null, "Run #" + turn.run + ", turn " + turn.number);
        link.href = config.runView + turn.run + "/";
        item.appendChild(link);
        var purpose = turn.purpose ? " for " + turn.purpose : "";
        item.appendChild(document.createTextNode(": " + turn.seat + (turn.role && turn.role !== turn.seat ? " as " + turn.role : "") + purpose + ", " + turn.status));
        var facts = [];
        if (typeof turn.steps_count === "number") {
          facts.push(turn.steps_count === 1 ? "1 step" : turn.steps_count + " steps");
        }
        if (turn.duration_ms) {
          facts.push((turn.duration_ms / 1000).toFixed(1) + " s");
        }
        if (turn.tokens_in || turn.tokens_out) {
          facts.push(turn.tokens_in + " tokens in, " + turn.tokens_out + " out");
        }
        if (turn.started_at) {
          facts.push(when(turn.started_at));
        }
        if (facts.length) {
          item.appendChild(el("span", "muted turn-facts", " (" + facts.join("; ") + ")"));
        }
        if (turn.outcome) {
          item.appendChild(el("div", "turn-outcome", turn.outcome.length > 300 ? turn.outcome.slice(0, 300) + "..." : turn.outcome));
        }
        list.appendChild(item);
      });
      if (!list.childNodes.length) {
        list.appendChild(el("li", "muted", "No agent has worked on this card yet."));
      }
    })
    .catch(function (error) {
      var list = document.getElementById("drawer-turns");
      list.textContent = "";
      list.appendChild(el("li", "error", "The turns could not be loaded: " + error.message));
    });
}

/* The roles of the epic's team, for the prompt preview. */
export function loadRoles(epicId) {
  var select = document.getElementById("prompt-role");
  var epic = (config.epics || []).filter(function (item) {
    return item.id === epicId;
  })[0];
  var teamName = epic ? epic.team : "standard";
  var teams = state.teams ? Promise.resolve(state.teams) : api("GET", config.api.teams + "?page_size=100").then(function (data) {
    state.teams = data.results || data || [];
    return state.teams;
  });
  return teams
    .then(function (list) {
      var team = list.filter(function (item) {
        return item.name === teamName;
      })[0];
      var roles = [];
      (team ? team.seats : []).forEach(function (seat) {
        (seat.roles || []).forEach(function (role) {
          if (roles.indexOf(role) < 0) {
            roles.push(role);
          }
        });
      });
      var chosen = select.value;
      while (select.options.length > 1) {
        select.remove(1);
      }
      roles.forEach(function (role) {
        var option = el("option", null, role.replace(/_/g, " "));
        option.value = role;
        select.appendChild(option);
      });
      if (roles.indexOf(chosen) >= 0) {
        select.value = chosen;
      }
    })
    .catch(function () {
      return null;
    });
}


function splitLabels(text) {
  return text
    .split(",")
    .map(function (part) {
      return part.trim();
    })
    .filter(Boolean);
}


var drawerRun = document.getElementById("drawer-run");

var commentForm = document.getElementById("comment-form");

/* The drawer's prompt preview, edit form, run button, comments and close button. */
export function wireDrawerPanels() {
  document.getElementById("prompt-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var id = state.openCard;
    var view = document.getElementById("prompt-view");
    if (!id) {
      return;
    }
    var role = document.getElementById("prompt-role").value;
    view.textContent = "";
    view.appendChild(el("p", "muted", "Compiling the prompt..."));
    api("GET", config.api.cards + id + "/prompt/" + (role ? "?role=" + encodeURIComponent(role) : ""))
      .then(function (prompt) {
        if (state.openCard !== id) {
          return;
        }
        view.textContent = "";
        view.appendChild(el("p", "prompt-who", "Seat " + prompt.seat + " as " + prompt.role + ", model profile " + prompt.model_profile + "."));
        (prompt.messages || []).forEach(function (item, index) {
          var details = el("details", "prompt-message");
          if (index === prompt.messages.length - 1) {
            details.open = true;
          }
          details.appendChild(el("summary", null, item.role + " message (" + String(item.content || "").length + " characters)"));
          details.appendChild(el("pre", null, typeof item.content === "string" ? item.content : JSON.stringify(item.content, null, 2)));
          view.appendChild(details);
        });
        if (prompt.tools && prompt.tools.length) {
          var names = prompt.tools.map(function (tool) {
            return (tool["function"] && tool["function"].name) || tool.name || "tool";
          });
          view.appendChild(el("p", "muted", "Tools offered: " + names.join(", ") + "."));
        }
      })
      .catch(function (error) {
        view.textContent = "";
        view.appendChild(el("p", "error", "No prompt preview: " + error.message));
      });
  });

  drawerForm.addEventListener("input", function () {
    state.drawerDirty = true;
  });

  drawerForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var id = state.openCard;
    if (!id || !config.canAct) {
      return;
    }
    var body = {
      title: document.getElementById("d-title").value.trim(),
      description: document.getElementById("d-description").value,
      requirements: document.getElementById("d-requirements").value,
      acceptance_criteria: document.getElementById("d-acceptance").value,
      priority: document.getElementById("d-priority").value.trim() || "medium",
      seat: document.getElementById("d-seat").value.trim(),
      labels: splitLabels(document.getElementById("d-labels").value)
    };
    var error = document.getElementById("drawer-error");
    error.textContent = "";
    api("PATCH", config.api.cards + id + "/", body)
      .then(function (card) {
        mergeCard(card);
        fillDrawer(card, true);
        refreshChoices();
        render();
        message("Saved card #" + id + ".", "ok");
        loadHistory(id);
      })
      .catch(function (failure) {
        error.textContent = failure.message;
      });
  });

  if (drawerRun) {
    drawerRun.addEventListener("click", function () {
      var id = state.openCard;
      drawerRun.disabled = true;
      var holder = document.getElementById("drawer-run-link");
      holder.textContent = "";
      api("POST", config.api.cards + id + "/runs/", {})
        .then(function (run) {
          holder.appendChild(document.createTextNode("Started run "));
          var link = el("a", null, "#" + run.id);
          link.href = config.runView + run.id + "/";
          holder.appendChild(link);
          holder.appendChild(document.createTextNode("."));
          return loadRuns();
        })
        .catch(function (failure) {
          holder.textContent = "The run did not start: " + failure.message;
        })
        .then(function () {
          drawerRun.disabled = false;
        });
    });
  }

  if (commentForm) {
    commentForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var id = state.openCard;
      var input = document.getElementById("comment-body");
      var body = input.value.trim();
      if (!id || !body) {
        return;
      }
      api("POST", config.api.cards + id + "/comments/", { body: body })
        .then(function () {
          input.value = "";
          loadComments(id);
          loadHistory(id);
        })
        .catch(function (failure) {
          document.getElementById("drawer-error").textContent = failure.message;
        });
    });
  }

  document.getElementById("drawer-close").addEventListener("click", closeDrawer);
}
