/* The board model: cards, dependencies, settings and runs loaded from the API into the shared state. */
import { config, state } from "./config.js";
import { el } from "../dom.js";
import { api } from "./text.js";

function takeCards(cards, dependencies) {
  state.cards = new Map();
  cards.forEach(function (card) {
    state.cards.set(card.id, card);
  });
  state.deps = new Map();
  dependencies.forEach(function (pair) {
    var list = state.deps.get(pair[0]) || [];
    list.push(pair[1]);
    state.deps.set(pair[0], list);
  });
}

export function loadBoard() {
  if (!config.epic) {
    return Promise.resolve();
  }
  if (state.lanes) {
    return api("GET", config.api.projectBoard).then(function (data) {
      takeCards(data.cards, data.dependencies);
      state.epics = data.epics.map(function (epic) {
        var known = (config.epics || []).filter(function (item) {
          return item.id === epic.id;
        })[0];
        return { id: epic.id, name: epic.name, status: epic.status, team: known ? known.team : "standard" };
      });
      return loadOutsideDeps();
    });
  }
  return api("GET", config.api.epic + config.epic + "/board/").then(function (data) {
    takeCards(data.cards, data.dependencies);
    state.runGate = data.run_gate;
    return loadOutsideDeps();
  });
}

function loadOutsideDeps() {
  var missing = new Set();
  state.deps.forEach(function (list) {
    list.forEach(function (id) {
      if (!state.cards.has(id) && !state.depStatus.has(id)) {
        missing.add(id);
      }
    });
  });
  return Promise.all(
    Array.from(missing).slice(0, 50).map(function (id) {
      return api("GET", config.api.cards + id + "/")
        .then(function (card) {
          state.depStatus.set(id, card.status);
        })
        .catch(function () {
          state.depStatus.set(id, "unknown");
        });
    })
  );
}

export function loadSettings() {
  return api("GET", config.api.settings)
    .then(function (data) {
      state.wip = data.wip_limits || {};
    })
    .catch(function () {
      state.wip = {};
    });
}

export function loadRuns() {
  if (!config.epic) {
    return Promise.resolve();
  }
  var url = config.api.runs + "?project=" + config.project + "&epic=" + config.epic + "&page_size=10";
  return api("GET", url)
    .then(function (data) {
      var runs = (data.results || data || []).slice().sort(function (a, b) {
        return b.id - a.id;
      });
      state.runs = runs;
      state.active = new Map();
      runs.forEach(function (run) {
        if (run.status === "running" || run.status === "queued") {
          (run.active_turns || []).forEach(function (turn) {
            if (turn.card && turn.status === "running") {
              state.active.set(turn.card, { seat: turn.seat, role: turn.role, run: run.id });
            }
          });
        }
      });
      showRun();
    })
    .catch(function () {
      return null;
    });
}

function showRun() {
  var node = document.getElementById("board-run");
  node.textContent = "";
  var run = state.runs[0];
  if (!run) {
    return;
  }
  var live = run.status === "running" || run.status === "queued";
  node.appendChild(document.createTextNode(live ? "Current run " : "Last run "));
  var link = el("a", null, "#" + run.id);
  link.href = config.runView + run.id + "/";
  node.appendChild(link);
  node.appendChild(document.createTextNode(": " + run.status + (run.cards_total !== undefined ? ", " + run.cards_done + " of " + run.cards_total + " cards done" : "")));
  if (live && state.active.size) {
    var names = [];
    state.active.forEach(function (info) {
      names.push(info.seat);
    });
    node.appendChild(document.createTextNode("; working now: " + names.join(", ")));
  }
}
