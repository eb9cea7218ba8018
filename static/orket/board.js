/* Orket board: the kanban of one epic. Columns per status, governed moves (drag and drop, the move
 * menu on each card, or the keyboard) through the transition API, a card drawer, filters kept in the
 * URL, and live updates from the project's board WebSocket.
 *
 * All text from the server is inserted with textContent, never as HTML.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("board-config");
  if (!configNode) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var boardNode = document.getElementById("board");
  var PRIORITY_WORDS = { high: 3, medium: 2, low: 1 };
  var WAITING = { blocked: true, waiting_for_developer: true };
  var FINAL = { done: true, canceled: true };
  var LABELS = {
    ready: "Ready",
    in_progress: "In progress",
    blocked: "Blocked",
    waiting_for_developer: "Waiting for developer",
    ready_for_testing: "Ready for testing",
    code_review: "Code review",
    done: "Done",
    canceled: "Canceled"
  };

  var state = {
    cards: new Map(),
    deps: new Map(), // card id -> [ids it depends on]
    depStatus: new Map(), // card id outside the epic -> status
    wip: {},
    active: new Map(), // card id -> {seat, role, run}
    runs: [],
    searchIds: null,
    errors: new Map(), // card id -> refusal text shown next to the card
    focused: null,
    openCard: null,
    socket: null,
    backoff: 500,
    reconnects: 0,
    connected: false,
    pending: new Set(),
    pendingTimer: null,
    moves: 0,
    heard: new Set(), // cards named by live frames, for tests and debugging
    fetching: 0
  };

  /* ---------- helpers ---------- */

  var el = window.orketDom.el;
  var cookie = window.orketDom.cookie;

  function api(method, url, body) {
    var options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") {
      options.headers["X-CSRFToken"] = cookie("csrftoken");
    }
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 204) {
        return null;
      }
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          if (!response.ok) {
            var error = new Error(describeError(data, response.status));
            error.status = response.status;
            error.data = data;
            throw error;
          }
          return data;
        });
    });
  }

  function describeError(data, status) {
    if (data && data.detail) {
      var text = String(data.detail);
      if (data.errors && typeof data.errors === "object") {
        var parts = [];
        Object.keys(data.errors).forEach(function (key) {
          var value = data.errors[key];
          parts.push(key + ": " + (Array.isArray(value) ? value.join(" ") : String(value)));
        });
        if (parts.length) {
          text += " " + parts.join("; ");
        }
      }
      return text;
    }
    if (status === 403) {
      return "You may read this board but not change it.";
    }
    return "The server could not do that (status " + status + "). Try again in a moment.";
  }

  function priorityText(value) {
    var number = Number(value);
    if (number >= 3) {
      return "high";
    }
    if (number >= 2) {
      return "medium";
    }
    if (number >= 1) {
      return "low";
    }
    return "lowest";
  }

  function message(text, kind) {
    var node = document.getElementById("board-message");
    node.textContent = text || "";
    node.dataset.kind = kind || "";
  }

  function connection(text, kind) {
    var node = document.getElementById("board-connection");
    node.textContent = text;
    node.dataset.state = kind || "";
  }

  /* ---------- filters and the URL ---------- */

  var filterInputs = {
    q: document.getElementById("filter-q"),
    seat: document.getElementById("filter-seat"),
    label: document.getElementById("filter-label"),
    priority: document.getElementById("filter-priority"),
    status: document.getElementById("filter-status"),
    blocked: document.getElementById("filter-blocked")
  };

  function filters() {
    return {
      q: filterInputs.q.value.trim(),
      seat: filterInputs.seat.value,
      label: filterInputs.label.value,
      priority: filterInputs.priority.value,
      status: filterInputs.status.value,
      blocked: filterInputs.blocked.checked ? "1" : ""
    };
  }

  function writeUrl() {
    var params = new URLSearchParams();
    if (config.epic) {
      params.set("epic", String(config.epic));
    }
    var current = filters();
    Object.keys(current).forEach(function (name) {
      if (current[name]) {
        params.set(name, current[name]);
      }
    });
    var query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  }

  function matches(card, current) {
    if (current.seat && card.seat !== current.seat) {
      return false;
    }
    if (current.label && (card.labels || []).indexOf(current.label) < 0) {
      return false;
    }
    if (current.priority && Number(card.priority) !== PRIORITY_WORDS[current.priority]) {
      return false;
    }
    if (current.status && card.status !== current.status) {
      return false;
    }
    if (current.blocked && !WAITING[card.status]) {
      return false;
    }
    if (current.q) {
      var inTitle = String(card.title).toLowerCase().indexOf(current.q.toLowerCase()) >= 0;
      var inSearch = state.searchIds && state.searchIds.has(card.id);
      if (!inTitle && !inSearch) {
        return false;
      }
    }
    return true;
  }

  function fillChoices(select, values) {
    var chosen = select.value;
    while (select.options.length > 1) {
      select.remove(1);
    }
    values.forEach(function (value) {
      var option = el("option", null, value);
      option.value = value;
      select.appendChild(option);
    });
    if (chosen && values.indexOf(chosen) < 0) {
      var kept = el("option", null, chosen);
      kept.value = chosen;
      select.appendChild(kept);
    }
    select.value = chosen;
  }

  function refreshChoices() {
    var seats = new Set();
    var labels = new Set();
    state.cards.forEach(function (card) {
      if (card.seat) {
        seats.add(card.seat);
      }
      (card.labels || []).forEach(function (label) {
        labels.add(label);
      });
    });
    fillChoices(filterInputs.seat, Array.from(seats).sort());
    fillChoices(filterInputs.label, Array.from(labels).sort());
  }

  var searchTimer = null;

  function searchChanged() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      loadSearch().then(render);
      writeUrl();
    }, 200);
    writeUrl();
    render();
  }

  function loadSearch() {
    var text = filterInputs.q.value.trim();
    if (!text || !config.epic) {
      state.searchIds = null;
      return Promise.resolve();
    }
    var url = config.api.cards + "?epic=" + config.epic + "&page_size=500&q=" + encodeURIComponent(text);
    return api("GET", url)
      .then(function (data) {
        if (filterInputs.q.value.trim() === text) {
          state.searchIds = new Set((data.results || []).map(function (card) {
            return card.id;
          }));
        }
      })
      .catch(function () {
        state.searchIds = null;
      });
  }

  /* ---------- loading ---------- */

  function loadBoard() {
    if (!config.epic) {
      return Promise.resolve();
    }
    return api("GET", config.api.epic + config.epic + "/board/").then(function (data) {
      state.cards = new Map();
      data.cards.forEach(function (card) {
        state.cards.set(card.id, card);
      });
      state.deps = new Map();
      data.dependencies.forEach(function (pair) {
        var list = state.deps.get(pair[0]) || [];
        list.push(pair[1]);
        state.deps.set(pair[0], list);
      });
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

  function loadSettings() {
    return api("GET", config.api.settings)
      .then(function (data) {
        state.wip = data.wip_limits || {};
      })
      .catch(function () {
        state.wip = {};
      });
  }

  function loadRuns() {
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
    node.appendChild(document.createTextNode((live ? "Current run " : "Last run ")));
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

  /* ---------- rendering ---------- */

  function depInfo(card) {
    var list = state.deps.get(card.id) || [];
    var open = list.filter(function (id) {
      var other = state.cards.get(id);
      var status = other ? other.status : state.depStatus.get(id);
      return status !== "done";
    });
    return { total: list.length, open: open };
  }

  function cardNode(card) {
    var node = el("article", "board-card");
    node.tabIndex = 0;
    node.dataset.card = String(card.id);
    node.dataset.status = card.status;
    node.setAttribute("aria-label", card.title + ", " + LABELS[card.status]);
    if (config.canAct && !FINAL[card.status]) {
      node.draggable = true;
    }
    var title = el("h3", "card-title", card.title);
    node.appendChild(title);
    var meta = el("div", "card-meta");
    meta.appendChild(el("span", "card-id", "#" + card.id));
    meta.appendChild(el("span", "badge priority priority-" + priorityText(card.priority), priorityText(card.priority)));
    if (card.seat) {
      meta.appendChild(el("span", "badge seat", card.seat));
    }
    (card.labels || []).forEach(function (label) {
      meta.appendChild(el("span", "badge label", label));
    });
    node.appendChild(meta);
    var flags = el("div", "card-flags");
    var deps = depInfo(card);
    if (deps.total) {
      var dep = el(
        "span",
        "badge dependency" + (deps.open.length ? " open" : ""),
        deps.open.length ? "waits on " + deps.open.map(function (id) { return "#" + id; }).join(", ") : (deps.total === 1 ? "dependency done" : deps.total + " dependencies done")
      );
      dep.dataset.flag = "dependency";
      flags.appendChild(dep);
    }
    if (WAITING[card.status]) {
      var blocked = el("span", "badge blocked", (card.status === "blocked" ? "blocked" : "waiting") + (card.wait_reason ? ": " + card.wait_reason : ""));
      blocked.dataset.flag = "blocked";
      flags.appendChild(blocked);
    }
    if (card.last_verification) {
      flags.appendChild(el("span", "badge verify-" + card.last_verification, "verification " + card.last_verification));
    }
    var agent = state.active.get(card.id);
    if (agent) {
      var working = el("span", "badge agent", "agent: " + agent.seat + (agent.role && agent.role !== agent.seat ? " (" + agent.role + ")" : ""));
      working.dataset.flag = "agent";
      working.title = "An agent is working on this card right now (run " + agent.run + ")";
      flags.appendChild(working);
    }
    if (flags.childNodes.length) {
      node.appendChild(flags);
    }
    var targets = config.transitions[card.status] || [];
    if (config.canAct && targets.length) {
      var label = el("label", "move-label");
      var select = el("select", "move-menu");
      select.setAttribute("aria-label", "Move card " + card.id + " to");
      var first = el("option", null, "Move to...");
      first.value = "";
      select.appendChild(first);
      targets.forEach(function (target) {
        var option = el("option", null, LABELS[target]);
        option.value = target;
        select.appendChild(option);
      });
      select.addEventListener("change", function () {
        var target = select.value;
        select.value = "";
        if (target) {
          requestMove(card.id, target);
        }
      });
      select.addEventListener("click", function (event) {
        event.stopPropagation();
      });
      select.addEventListener("keydown", function (event) {
        event.stopPropagation();
      });
      label.appendChild(select);
      node.appendChild(label);
    }
    var error = state.errors.get(card.id);
    if (error) {
      node.appendChild(el("p", "card-error", error));
      node.classList.add("refused");
    }
    node.addEventListener("click", function () {
      openDrawer(card.id);
    });
    node.addEventListener("focus", function () {
      state.focused = card.id;
    });
    node.addEventListener("dragstart", function (event) {
      event.dataTransfer.setData("text/plain", String(card.id));
      event.dataTransfer.effectAllowed = "move";
      node.classList.add("dragging");
      state.dragging = true;
    });
    node.addEventListener("dragend", function () {
      node.classList.remove("dragging");
      endDrag();
    });
    return node;
  }

  function render() {
    if (!boardNode) {
      return;
    }
    if (state.dragging) {
      // Replacing the nodes under a drag would cancel it; draw once the drag ends.
      state.renderDeferred = true;
      return;
    }
    state.renderDeferred = false;
    var current = filters();
    var showCanceled = document.getElementById("show-canceled").checked || current.status === "canceled";
    var focusedId = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.card : null;
    var scroll = {};
    boardNode.querySelectorAll(".column-cards").forEach(function (list) {
      scroll[list.dataset.status] = list.scrollTop;
    });
    var byStatus = {};
    var totals = {};
    config.statuses.forEach(function (status) {
      byStatus[status] = [];
      totals[status] = 0;
    });
    Array.from(state.cards.values())
      .sort(function (a, b) {
        return a.rank - b.rank || a.id - b.id;
      })
      .forEach(function (card) {
        if (!byStatus[card.status]) {
          return;
        }
        totals[card.status] += 1;
        if (matches(card, current)) {
          byStatus[card.status].push(card);
        }
      });
    var fragment = document.createDocumentFragment();
    config.statuses.forEach(function (status) {
      var column = el("section", "column");
      column.dataset.status = status;
      if (status === "canceled" && !showCanceled) {
        column.classList.add("folded");
      }
      var head = el("header", "column-head");
      var name = el("h2", null, LABELS[status]);
      name.id = "column-" + status;
      head.appendChild(name);
      var limit = Number(state.wip[status] || 0);
      var count = el("span", "wip", limit ? totals[status] + " / " + limit : String(totals[status]));
      count.dataset.field = "wip";
      if (limit && totals[status] > limit) {
        column.classList.add("over-limit");
        count.title = "Over the work-in-progress limit of " + limit;
        head.appendChild(count);
        head.appendChild(el("span", "wip-warning", "over WIP limit"));
      } else {
        head.appendChild(count);
      }
      column.appendChild(head);
      column.setAttribute("aria-labelledby", name.id);
      var list = el("div", "column-cards");
      list.dataset.status = status;
      if (status === "canceled" && !showCanceled) {
        list.appendChild(el("p", "muted folded-note", totals[status] + " canceled (folded)"));
      } else {
        byStatus[status].forEach(function (card) {
          list.appendChild(cardNode(card));
        });
        if (byStatus[status].length < totals[status]) {
          list.appendChild(el("p", "muted folded-note", totals[status] - byStatus[status].length + " hidden by filters"));
        }
      }
      column.addEventListener("dragover", function (event) {
        if (config.canAct) {
          event.preventDefault();
          event.dataTransfer.dropEffect = "move";
          column.classList.add("drop-target");
        }
      });
      column.addEventListener("dragleave", function () {
        column.classList.remove("drop-target");
      });
      column.addEventListener("drop", function (event) {
        event.preventDefault();
        endDrag();
        column.classList.remove("drop-target");
        var id = Number(event.dataTransfer.getData("text/plain"));
        if (id && state.cards.has(id) && state.cards.get(id).status !== status) {
          requestMove(id, status);
        }
      });
      column.appendChild(list);
      fragment.appendChild(column);
    });
    boardNode.textContent = "";
    boardNode.appendChild(fragment);
    boardNode.querySelectorAll(".column-cards").forEach(function (list) {
      if (scroll[list.dataset.status]) {
        list.scrollTop = scroll[list.dataset.status];
      }
    });
    if (focusedId) {
      var again = boardNode.querySelector('.board-card[data-card="' + focusedId + '"]');
      if (again) {
        again.focus({ preventScroll: true });
      }
    }
  }

  function endDrag() {
    if (state.dragging) {
      state.dragging = false;
      if (state.renderDeferred) {
        render();
      }
    }
  }

  /* ---------- governed moves ---------- */

  function requestMove(id, target) {
    var card = state.cards.get(id);
    if (!card) {
      return;
    }
    state.errors.delete(id);
    if (WAITING[target]) {
      askWaitReason(card, target).then(function (answer) {
        if (answer) {
          move(id, target, answer.wait_reason, answer.reason);
        } else {
          render();
        }
      });
      return;
    }
    move(id, target, "", "");
  }

  function move(id, target, waitReason, reason) {
    var card = state.cards.get(id);
    var before = card.status;
    var beforeReason = card.wait_reason;
    // Show the move at once; put the card back if the rules refuse it.
    card.status = target;
    card.wait_reason = waitReason || "";
    render();
    var body = { status: target };
    if (waitReason) {
      body.wait_reason = waitReason;
    }
    if (reason) {
      body.reason = reason;
    }
    api("POST", config.api.cards + id + "/transition/", body)
      .then(function (updated) {
        state.moves += 1;
        mergeCard(updated);
        message("Moved #" + id + " to " + LABELS[target] + ".", "ok");
        render();
      })
      .catch(function (error) {
        var current = state.cards.get(id);
        if (current && current.status === target) {
          current.status = before;
          current.wait_reason = beforeReason;
        }
        state.errors.set(id, error.message);
        message("Card #" + id + " was not moved: " + error.message, "bad");
        render();
        var node = boardNode.querySelector('.board-card[data-card="' + id + '"]');
        if (node) {
          node.classList.add("snapped");
        }
      });
  }

  function mergeCard(full) {
    var card = {
      id: full.id,
      title: full.title,
      status: full.status,
      priority: full.priority,
      wait_reason: full.wait_reason,
      seat: full.seat,
      labels: full.labels,
      last_verification: full.last_verification,
      last_worked_by_seat: full.last_worked_by_seat,
      rank: full.rank,
      created_at: full.created_at,
      updated_at: full.updated_at
    };
    if (full.epic !== config.epic) {
      state.cards.delete(full.id);
      return;
    }
    state.cards.set(full.id, card);
    if (Array.isArray(full.depends_on)) {
      state.deps.set(full.id, full.depends_on.slice());
    }
    if (state.openCard === full.id) {
      fillDrawer(full, false);
    }
  }

  var waitDialog = document.getElementById("wait-dialog");
  var waitResolve = null;

  function askWaitReason(card, target) {
    return new Promise(function (resolve) {
      waitResolve = resolve;
      document.getElementById("wait-form").reset();
      document.getElementById("wait-target").textContent = "Moving #" + card.id + " " + card.title + " to " + LABELS[target] + ". Choose the reason:";
      waitDialog.showModal();
      var first = waitDialog.querySelector("input[type=radio]");
      if (first) {
        first.focus();
      }
    });
  }

  function finishWait(answer) {
    var resolve = waitResolve;
    waitResolve = null;
    if (waitDialog.open) {
      waitDialog.close();
    }
    if (resolve) {
      resolve(answer);
    }
  }

  document.getElementById("wait-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var chosen = waitDialog.querySelector("input[name=wait_reason]:checked");
    if (!chosen) {
      return;
    }
    finishWait({ wait_reason: chosen.value, reason: document.getElementById("wait-note").value.trim() });
  });
  document.getElementById("wait-cancel").addEventListener("click", function () {
    finishWait(null);
  });
  waitDialog.addEventListener("cancel", function (event) {
    event.preventDefault();
    finishWait(null);
  });

  /* ---------- new card ---------- */

  var newDialog = document.getElementById("new-dialog");

  function openNewCard() {
    if (!config.canAct || !config.epic) {
      return;
    }
    document.getElementById("new-form").reset();
    document.getElementById("new-error").textContent = "";
    newDialog.showModal();
    document.getElementById("new-card-title").focus();
  }

  document.getElementById("new-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var body = {
      epic: config.epic,
      title: document.getElementById("new-card-title").value.trim(),
      priority: document.getElementById("new-card-priority").value
    };
    var seat = document.getElementById("new-card-seat").value.trim();
    if (seat) {
      body.seat = seat;
    }
    if (!body.title) {
      return;
    }
    api("POST", config.api.cards, body)
      .then(function (card) {
        newDialog.close();
        mergeCard(card);
        refreshChoices();
        render();
        message("Created card #" + card.id + ".", "ok");
        var node = boardNode.querySelector('.board-card[data-card="' + card.id + '"]');
        if (node) {
          node.focus();
        }
      })
      .catch(function (error) {
        document.getElementById("new-error").textContent = error.message;
      });
  });
  document.getElementById("new-cancel").addEventListener("click", function () {
    newDialog.close();
  });
  var newButton = document.getElementById("new-card");
  if (newButton) {
    newButton.addEventListener("click", openNewCard);
  }

  /* ---------- runs ---------- */

  var runButton = document.getElementById("run-epic");
  if (runButton) {
    runButton.addEventListener("click", function () {
      runButton.disabled = true;
      api("POST", config.api.epic + config.epic + "/runs/", {})
        .then(function (run) {
          message("", "");
          var node = document.getElementById("board-message");
          node.appendChild(document.createTextNode("Started run "));
          var link = el("a", null, "#" + run.id);
          link.href = config.runView + run.id + "/";
          link.id = "started-run";
          node.appendChild(link);
          node.appendChild(document.createTextNode("."));
          node.dataset.kind = "ok";
          return loadRuns();
        })
        .catch(function (error) {
          message("The run did not start: " + error.message, "bad");
        })
        .then(function () {
          runButton.disabled = false;
          render();
        });
    });
  }

  /* ---------- the drawer ---------- */

  var drawer = document.getElementById("drawer");
  var drawerForm = document.getElementById("drawer-form");
  var lastFocus = null;

  function fillDrawer(card, overwrite) {
    document.getElementById("drawer-title").textContent = "#" + card.id + " " + card.title;
    var facts = document.getElementById("drawer-facts");
    facts.textContent = "";
    facts.appendChild(el("span", "badge status-" + card.status, LABELS[card.status] || card.status));
    if (card.wait_reason) {
      facts.appendChild(el("span", "badge blocked", "wait reason: " + card.wait_reason));
    }
    if (card.depends_on && card.depends_on.length) {
      facts.appendChild(el("span", "badge dependency", "depends on " + card.depends_on.map(function (id) { return "#" + id; }).join(", ")));
    }
    if (card.last_worked_by_seat) {
      facts.appendChild(el("span", "badge seat", "last worked by " + card.last_worked_by_seat));
    }
    document.getElementById("d-description-view").textContent = card.description || "No description.";
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

  function openDrawer(id) {
    if (!drawer.hidden && state.openCard === id) {
      return;
    }
    lastFocus = document.activeElement;
    state.openCard = id;
    drawer.hidden = false;
    drawer.dataset.card = String(id);
    document.getElementById("drawer-error").textContent = "";
    document.getElementById("drawer-run-link").textContent = "";
    document.getElementById("drawer-comments").textContent = "";
    document.getElementById("drawer-history").textContent = "";
    var summary = state.cards.get(id);
    if (summary) {
      document.getElementById("drawer-title").textContent = "#" + id + " " + summary.title;
    }
    api("GET", config.api.cards + id + "/")
      .then(function (card) {
        if (state.openCard === id) {
          fillDrawer(card, true);
          document.getElementById("d-title").focus();
        }
      })
      .catch(function (error) {
        document.getElementById("drawer-error").textContent = error.message;
      });
    loadComments(id);
    loadHistory(id);
  }

  function closeDrawer() {
    if (drawer.hidden) {
      return;
    }
    drawer.hidden = true;
    state.openCard = null;
    if (lastFocus && document.body.contains(lastFocus)) {
      lastFocus.focus();
    } else if (state.focused) {
      focusCard(state.focused);
    }
  }

  function when(value) {
    var date = new Date(value);
    return isNaN(date.getTime()) ? "" : date.toLocaleString();
  }

  function loadComments(id) {
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

  function loadHistory(id) {
    return api("GET", config.api.cards + id + "/history/?page_size=200").then(function (data) {
      if (state.openCard !== id) {
        return;
      }
      var list = document.getElementById("drawer-history");
      list.textContent = "";
      (data.results || []).forEach(function (row) {
        var item = el("li", "history-row");
        var who = row.actor || (row.actor_seat ? row.actor_seat + (row.actor_roles && row.actor_roles.length ? " (" + row.actor_roles.join(", ") + ")" : "") : "system");
        var what = row.event;
        if (row.from_status || row.to_status) {
          what = (row.from_status || "new") + " to " + row.to_status;
        } else if (row.changes && typeof row.changes === "object") {
          var names = Array.isArray(row.changes) ? row.changes : Object.keys(row.changes);
          if (names.length) {
            what = row.event + ": " + names.join(", ");
          }
        }
        item.appendChild(el("span", "history-when", when(row.created_at)));
        item.appendChild(el("span", "history-who", who));
        item.appendChild(el("span", "history-what", what));
        var why = [row.wait_reason, row.reason].filter(Boolean).join(": ");
        if (why) {
          item.appendChild(el("span", "history-why", why));
        }
        list.appendChild(item);
      });
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

  var drawerRun = document.getElementById("drawer-run");
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

  var commentForm = document.getElementById("comment-form");
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

  /* ---------- keyboard ---------- */

  function visibleCards() {
    return Array.from(boardNode ? boardNode.querySelectorAll(".board-card") : []);
  }

  function focusCard(id) {
    var node = boardNode && boardNode.querySelector('.board-card[data-card="' + id + '"]');
    if (node) {
      node.focus();
      node.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  }

  function stepFocus(delta) {
    var cards = visibleCards();
    if (!cards.length) {
      return;
    }
    var index = cards.indexOf(document.activeElement);
    if (index < 0) {
      index = delta > 0 ? -1 : cards.length;
    }
    var next = cards[Math.max(0, Math.min(cards.length - 1, index + delta))];
    next.focus();
    next.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  function neighbourTarget(card, direction) {
    var order = config.statuses;
    var allowed = config.transitions[card.status] || [];
    var index = order.indexOf(card.status) + direction;
    while (index >= 0 && index < order.length) {
      if (allowed.indexOf(order[index]) >= 0) {
        return order[index];
      }
      index += direction;
    }
    return null;
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      if (waitDialog.open || newDialog.open) {
        return;
      }
      if (!drawer.hidden) {
        event.preventDefault();
        closeDrawer();
      }
      return;
    }
    var target = event.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable);
    if (typing || event.ctrlKey || event.metaKey || event.altKey || waitDialog.open || newDialog.open) {
      return;
    }
    var onCard = target && target.classList && target.classList.contains("board-card");
    if (event.key === "n") {
      event.preventDefault();
      openNewCard();
    } else if (event.key === "/") {
      event.preventDefault();
      filterInputs.q.focus();
      filterInputs.q.select();
    } else if (event.key === "j") {
      event.preventDefault();
      stepFocus(1);
    } else if (event.key === "k") {
      event.preventDefault();
      stepFocus(-1);
    } else if (event.key === "Enter" && onCard) {
      event.preventDefault();
      openDrawer(Number(target.dataset.card));
    } else if (event.key === "m" && onCard) {
      var menu = target.querySelector(".move-menu");
      if (menu) {
        event.preventDefault();
        menu.focus();
      }
    } else if (onCard && event.shiftKey && (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
      event.preventDefault();
      var card = state.cards.get(Number(target.dataset.card));
      var next = card && neighbourTarget(card, event.key === "ArrowRight" ? 1 : -1);
      if (next && config.canAct) {
        requestMove(card.id, next);
      }
    }
  });

  /* ---------- live updates ---------- */

  function queueCard(id) {
    state.pending.add(id);
    if (!state.pendingTimer) {
      state.pendingTimer = setTimeout(flushPending, 50);
    }
  }

  function flushPending() {
    state.pendingTimer = null;
    var ids = Array.from(state.pending);
    state.pending.clear();
    state.fetching += 1;
    Promise.all(
      ids.map(function (id) {
        return api("GET", config.api.cards + id + "/")
          .then(function (card) {
            mergeCard(card);
            if (state.openCard === id) {
              loadHistory(id);
              loadComments(id);
            }
          })
          .catch(function (error) {
            if (error.status === 404) {
              state.cards.delete(id);
            }
          });
      })
    )
      .then(function () {
        // Agents move cards during a run: refresh who is working on what.
        var run = state.runs[0];
        if (run && (run.status === "running" || run.status === "queued")) {
          return loadRuns();
        }
        return null;
      })
      .then(function () {
        state.fetching -= 1;
        refreshChoices();
        render();
      });
  }

  function onFrame(frame) {
    if (!frame || !frame.type) {
      return;
    }
    if (frame.type === "card.changed" || frame.type === "card.created") {
      state.heard.add(Number(frame.card));
      queueCard(Number(frame.card));
    } else if (frame.type === "epic.changed") {
      loadBoard().then(function () {
        refreshChoices();
        render();
      });
    } else if (frame.type === "run.changed") {
      loadRuns().then(render);
    }
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + config.ws);
    state.socket = socket;
    socket.onopen = function () {
      state.backoff = 500;
      state.connected = true;
      connection(state.reconnects ? "Live (reconnected)." : "Live.", "live");
      if (state.reconnects) {
        // Changes may have happened while the socket was down.
        Promise.all([loadBoard(), loadRuns()]).then(function () {
          refreshChoices();
          render();
        });
      }
    };
    socket.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      onFrame(frame);
    };
    socket.onclose = function (event) {
      if (state.socket !== socket) {
        return;
      }
      state.socket = null;
      state.connected = false;
      if (event.code === 4401) {
        connection("Your session has ended; log in again to see live changes.", "bad");
        return;
      }
      if (event.code === 4404 || event.code === 4403) {
        connection("This board is not visible to you.", "bad");
        return;
      }
      var wait = state.backoff + Math.floor(Math.random() * 250);
      state.backoff = Math.min(10000, state.backoff * 2);
      state.reconnects += 1;
      connection("Connection lost; reconnecting in " + Math.ceil(wait / 1000) + " s.", "warn");
      setTimeout(connect, wait);
    };
  }

  /* ---------- wiring ---------- */

  document.getElementById("filter-epic").addEventListener("change", function (event) {
    var params = new URLSearchParams(location.search);
    params.set("epic", event.target.value);
    location.search = params.toString();
  });
  filterInputs.q.addEventListener("input", searchChanged);
  ["seat", "label", "priority", "status", "blocked"].forEach(function (name) {
    filterInputs[name].addEventListener("change", function () {
      writeUrl();
      render();
    });
  });
  document.getElementById("show-canceled").addEventListener("change", render);
  document.getElementById("board-filters").addEventListener("submit", function (event) {
    event.preventDefault();
  });
  document.getElementById("filter-clear").addEventListener("click", function () {
    filterInputs.q.value = "";
    ["seat", "label", "priority", "status"].forEach(function (name) {
      filterInputs[name].value = "";
    });
    filterInputs.blocked.checked = false;
    state.searchIds = null;
    writeUrl();
    render();
  });

  window.orketBoard = {
    state: function () {
      return {
        connected: state.connected,
        reconnects: state.reconnects,
        cards: state.cards.size,
        moves: state.moves,
        ready: !!state.ready,
        heard: Array.from(state.heard),
        idle: !state.pending.size && !state.pendingTimer && !state.fetching
      };
    },
    dropConnection: function () {
      if (state.socket) {
        state.socket.close(4000, "dropped on purpose");
        return true;
      }
      return false;
    }
  };

  if (!config.epic) {
    return;
  }
  Promise.all([loadBoard(), loadSettings(), loadRuns(), loadSearch()])
    .then(function () {
      refreshChoices();
      render();
      state.ready = true;
      boardNode.dataset.ready = "1";
    })
    .catch(function (error) {
      message("The board could not be loaded: " + error.message, "bad");
    });
  connect();
})();
