/* Orket board: the kanban of one epic, or of every epic in swimlanes. Columns per status, governed
 * moves (drag and drop, the menu on each card, or the keyboard) through the transition API, order
 * within a column (rank) through the reorder API, a card drawer, filters kept in the URL, and live
 * updates from the project's board WebSocket.
 *
 * All text from the server is inserted with textContent, never as HTML. The one piece of markup the
 * server sends, the description rendered from Markdown (already sanitised there), is parsed inertly
 * and copied node by node through an allowlist (safeMarkup), so even a faulty server cannot inject.
 *
 * Speed: card nodes are built once and reused while the card looks the same (a signature decides),
 * events are delegated to the board (no listeners per card), a column list is only touched when its
 * cards changed, and the first draw of a large board goes out in chunks between frames.
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
  var ORDER_CHOICES = [
    { value: "order:up", text: "Up one" },
    { value: "order:down", text: "Down one" },
    { value: "order:top", text: "To the top" },
    { value: "order:bottom", text: "To the bottom" }
  ];
  var FIRST_PER_COLUMN = 30; // cards per column drawn at once on the first draw; the rest follow
  var SLICE_MS = 10; // then this much drawing per frame

  var state = {
    cards: new Map(),
    deps: new Map(), // card id -> [ids it depends on]
    depStatus: new Map(), // card id outside the loaded cards -> status
    epics: (config.epics || []).slice(),
    lanes: !!(config.view && config.view.lanes),
    wip: {},
    active: new Map(), // card id -> {seat, role, run}
    runs: [],
    searchIds: null,
    errors: new Map(), // card id -> refusal text shown next to the card
    nodes: new Map(), // card id -> {node, sig}
    columns: new Map(), // "lane:status" -> {section, list, count, ids}
    visible: new Map(), // "lane:status" -> [visible card ids in order]
    layoutKey: null,
    focused: null,
    openCard: null,
    socket: null,
    backoff: 500,
    reconnects: 0,
    connected: false,
    pending: new Set(),
    pendingTimer: null,
    moves: 0,
    reorders: 0,
    heard: new Set(), // cards named by live frames, for tests and debugging
    fetching: 0,
    drawing: false,
    dragId: null,
    teams: null
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

  function sentence(text) {
    text = String(text).trim();
    if (text && !/[.!?]$/.test(text)) {
      text += ".";
    }
    return text;
  }

  function describeError(data, status) {
    if (data && data.detail) {
      var text = sentence(data.detail);
      if (data.errors && typeof data.errors === "object" && !Array.isArray(data.errors)) {
        var extra = [];
        Object.keys(data.errors).slice(1).forEach(function (key) {
          var value = data.errors[key];
          extra.push(sentence(key + ": " + (Array.isArray(value) ? value.join(" ") : String(value))));
        });
        if (extra.length) {
          text += " " + extra.join(" ");
        }
      }
      return text;
    }
    if (status === 403) {
      return "You may read this board but not change it.";
    }
    if (status === 404) {
      return "That card or project is gone, or you may not see it.";
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

  function safeUrl(url) {
    var text = String(url || "").trim();
    return /^https?:\/\//i.test(text) ? text : null;
  }

  /* Copy server-sanitised HTML through an allowlist: tags are recreated, text goes in as text. */
  var SAFE_TAGS = {
    P: true, BR: true, H3: true, H4: true, H5: true, H6: true, UL: true, OL: true, LI: true,
    BLOCKQUOTE: true, PRE: true, CODE: true, STRONG: true, EM: true, DEL: true, A: true, HR: true,
    TABLE: true, THEAD: true, TBODY: true, TR: true, TH: true, TD: true
  };

  function safeMarkup(html) {
    var fragment = document.createDocumentFragment();
    if (!html) {
      return fragment;
    }
    var parsed = new DOMParser().parseFromString(String(html), "text/html");
    function copy(source, target) {
      source.childNodes.forEach(function (child) {
        if (child.nodeType === 3) {
          target.appendChild(document.createTextNode(child.nodeValue));
        } else if (child.nodeType === 1 && SAFE_TAGS[child.tagName]) {
          var node = document.createElement(child.tagName.toLowerCase());
          if (child.tagName === "A") {
            var href = child.getAttribute("href") || "";
            var local = !/^(\\|\/\\|\/\/)/.test(href); // not //host, /\host or \host
            if (local && (/^(https?:|mailto:|\/|#|\?|\.)/i.test(href) || !/^[^/?#]*:/.test(href))) {
              node.setAttribute("href", href);
            }
            node.setAttribute("rel", "nofollow noopener noreferrer");
          } else if (child.tagName === "OL" && /^\d{1,9}$/.test(child.getAttribute("start") || "")) {
            node.setAttribute("start", child.getAttribute("start"));
          }
          copy(child, node);
          target.appendChild(node);
        } else if (child.nodeType === 1) {
          copy(child, target); // an unknown element: keep only its text
        }
      });
    }
    copy(parsed.body, fragment);
    return fragment;
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
  var showCanceledInput = document.getElementById("show-canceled");
  var lanesInput = document.getElementById("lanes-toggle");

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
    if (state.lanes) {
      params.set("lanes", "epic");
    }
    if (showCanceledInput.checked) {
      params.set("canceled", "1");
    }
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
    var existing = Array.from(select.options).slice(1).map(function (option) {
      return option.value;
    });
    var wanted = values.slice();
    if (chosen && wanted.indexOf(chosen) < 0) {
      wanted.push(chosen);
    }
    if (existing.join("\u0001") === wanted.join("\u0001")) {
      return;
    }
    while (select.options.length > 1) {
      select.remove(1);
    }
    wanted.forEach(function (value) {
      var option = el("option", null, value);
      option.value = value;
      select.appendChild(option);
    });
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
    var scope = state.lanes ? "project=" + config.project : "epic=" + config.epic;
    var url = config.api.cards + "?" + scope + "&page_size=500&q=" + encodeURIComponent(text);
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

  function loadBoard() {
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

  /* ---------- card nodes ---------- */

  function depInfo(card) {
    var list = state.deps.get(card.id) || [];
    var open = list.filter(function (id) {
      var other = state.cards.get(id);
      var status = other ? other.status : state.depStatus.get(id);
      return status !== "done";
    });
    return { total: list.length, open: open };
  }

  function depText(deps) {
    if (!deps.total) {
      return "";
    }
    if (deps.open.length) {
      return "waits on " + deps.open.map(function (id) { return "#" + id; }).join(", ");
    }
    return deps.total === 1 ? "dependency done" : deps.total + " dependencies done";
  }

  function pullRequest(card) {
    var pr = card.pull_request;
    if (!pr || typeof pr !== "object" || !pr.number) {
      return null;
    }
    return { number: pr.number, url: safeUrl(pr.url), state: pr.state ? String(pr.state) : "" };
  }

  function signature(card) {
    var agent = state.active.get(card.id);
    var pr = pullRequest(card);
    return [
      card.title, card.status, card.priority, card.wait_reason, card.seat, (card.labels || []).join(","),
      card.last_verification, depText(depInfo(card)), agent ? agent.seat + "/" + agent.role + "/" + agent.run : "",
      pr ? pr.number + "/" + pr.url + "/" + pr.state : "", card.review_cycle || 0, state.errors.get(card.id) || "",
      config.canAct
    ].join("\u0001");
  }

  function cardNode(card) {
    var node = el("article", "board-card");
    node.tabIndex = 0;
    node.dataset.card = String(card.id);
    node.dataset.status = card.status;
    node.setAttribute("aria-label", "#" + card.id + " " + card.title + ", " + LABELS[card.status]);
    if (config.canAct && !FINAL[card.status]) {
      node.draggable = true;
    }
    node.appendChild(el("h3", "card-title", card.title));
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
      var dep = el("span", "badge dependency" + (deps.open.length ? " open" : ""), depText(deps));
      dep.dataset.flag = "dependency";
      flags.appendChild(dep);
    }
    if (WAITING[card.status]) {
      var blocked = el("span", "badge blocked", (card.status === "blocked" ? "blocked" : "waiting") + (card.wait_reason ? ": " + card.wait_reason : ""));
      blocked.dataset.flag = "blocked";
      flags.appendChild(blocked);
    }
    if (card.last_verification) {
      var verify = el("span", "badge verify-" + card.last_verification, "verification " + card.last_verification);
      verify.dataset.flag = "verification";
      flags.appendChild(verify);
    }
    var pr = pullRequest(card);
    if (pr) {
      var prNode = el(pr.url ? "a" : "span", "badge pr pr-" + (pr.state || "open"), "PR #" + pr.number + (pr.state ? " " + pr.state : ""));
      if (pr.url) {
        prNode.href = pr.url;
        prNode.rel = "noopener noreferrer";
        prNode.target = "_blank";
        prNode.setAttribute("aria-label", "Pull request " + pr.number + (pr.state ? ", " + pr.state : "") + " (opens in a new tab)");
      }
      prNode.dataset.flag = "pull-request";
      flags.appendChild(prNode);
    }
    if (Number(card.review_cycle) > 0) {
      var cycle = el("span", "badge review-cycle", "review cycle " + Number(card.review_cycle));
      cycle.dataset.flag = "review-cycle";
      cycle.title = "Changes were requested " + Number(card.review_cycle) + " time" + (Number(card.review_cycle) === 1 ? "" : "s");
      flags.appendChild(cycle);
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
    if (config.canAct) {
      // One light button per card; the menu itself is shared (see openMoveMenu), which keeps a
      // board of thousands of cards cheap to draw.
      var button = el("button", "move-button", "Move\u2026");
      button.type = "button";
      button.setAttribute("aria-haspopup", "menu");
      button.setAttribute("aria-expanded", "false");
      button.setAttribute("aria-label", "Move card #" + card.id);
      node.appendChild(button);
    }
    var error = state.errors.get(card.id);
    if (error) {
      node.appendChild(el("p", "card-error", error));
      node.classList.add("refused");
    }
    return node;
  }

  function nodeFor(card, known) {
    var sig = known === undefined ? signature(card) : known;
    var cached = state.nodes.get(card.id);
    if (cached && cached.sig === sig) {
      return cached.node;
    }
    var node = cardNode(card);
    state.nodes.set(card.id, { node: node, sig: sig });
    return node;
  }

  /* ---------- layout ---------- */

  function laneList() {
    if (!state.lanes) {
      return [{ id: config.epic, name: null }];
    }
    return state.epics;
  }

  function layoutKey(showCanceled) {
    return (state.lanes ? "lanes:" + state.epics.map(function (epic) { return epic.id + "=" + epic.name; }).join(",") : "epic:" + config.epic) + "|" + (showCanceled ? "all" : "folded") + "|" + config.statuses.join(",");
  }

  function columnHead(status, idPrefix) {
    var head = el("header", "column-head");
    var name = el("h2", null, LABELS[status]);
    name.id = idPrefix + status;
    head.appendChild(name);
    var count = el("span", "wip", "0");
    count.dataset.field = "wip";
    head.appendChild(count);
    var warning = el("span", "wip-warning", "over WIP limit");
    warning.hidden = true;
    head.appendChild(warning);
    return { head: head, name: name, count: count, warning: warning };
  }

  function buildLayout(showCanceled) {
    state.columns = new Map();
    state.heads = new Map();
    var fragment = document.createDocumentFragment();
    boardNode.classList.toggle("lanes", state.lanes);
    boardNode.classList.toggle("canceled-shown", showCanceled);
    if (state.lanes) {
      var headRow = el("div", "lane-heads");
      config.statuses.forEach(function (status) {
        var wrapper = el("div", "lane-head-cell column-like");
        wrapper.dataset.status = status;
        if (status === "canceled" && !showCanceled) {
          wrapper.classList.add("folded");
        }
        var parts = columnHead(status, "column-");
        wrapper.appendChild(parts.head);
        headRow.appendChild(wrapper);
        state.heads.set(status, { wrapper: wrapper, count: parts.count, warning: parts.warning });
      });
      fragment.appendChild(headRow);
    }
    laneList().forEach(function (lane) {
      var holder = fragment;
      if (state.lanes) {
        var laneNode = el("section", "lane");
        laneNode.dataset.epic = String(lane.id);
        var title = el("h2", "lane-title");
        title.id = "lane-" + lane.id;
        var link = el("a", null, lane.name);
        link.href = location.pathname + "?epic=" + lane.id;
        title.appendChild(link);
        var laneCount = el("span", "lane-count muted", "");
        title.appendChild(laneCount);
        if (lane.id === config.epic) {
          laneNode.classList.add("current");
          title.appendChild(el("span", "badge lane-current", "selected epic"));
        }
        laneNode.setAttribute("aria-labelledby", title.id);
        laneNode.appendChild(title);
        var row = el("div", "lane-columns");
        laneNode.appendChild(row);
        fragment.appendChild(laneNode);
        holder = row;
        lane.countNode = laneCount;
      }
      config.statuses.forEach(function (status) {
        var column = el("section", "column");
        column.dataset.status = status;
        column.dataset.epic = String(lane.id);
        if (status === "canceled" && !showCanceled) {
          column.classList.add("folded");
        }
        var entry = { section: column, ids: null };
        if (!state.lanes) {
          var parts = columnHead(status, "column-");
          column.appendChild(parts.head);
          column.setAttribute("aria-labelledby", parts.name.id);
          entry.count = parts.count;
          entry.warning = parts.warning;
        } else {
          column.setAttribute("aria-label", lane.name + ": " + LABELS[status]);
        }
        var list = el("div", "column-cards");
        list.dataset.status = status;
        column.appendChild(list);
        entry.list = list;
        state.columns.set(lane.id + ":" + status, entry);
        holder.appendChild(column);
      });
    });
    boardNode.textContent = "";
    boardNode.appendChild(fragment);
  }

  /* ---------- rendering ---------- */

  function render() {
    if (!boardNode || !state.ready) {
      return;
    }
    if (state.dragId !== null) {
      // Replacing the nodes under a drag would cancel it; draw once the drag ends.
      state.renderDeferred = true;
      return;
    }
    state.renderDeferred = false;
    var current = filters();
    var showCanceled = showCanceledInput.checked || current.status === "canceled";
    var key = layoutKey(showCanceled);
    if (key !== state.layoutKey) {
      buildLayout(showCanceled);
      state.layoutKey = key;
    }
    var active = document.activeElement;
    var focusedId = active && active.classList && active.classList.contains("board-card") ? active.dataset.card : null;
    var groups = new Map();
    var laneTotals = new Map();
    var totals = {};
    config.statuses.forEach(function (status) {
      totals[status] = 0;
    });
    state.columns.forEach(function (entry, columnKey) {
      groups.set(columnKey, { shown: [], total: 0 });
    });
    Array.from(state.cards.values())
      .sort(function (a, b) {
        return a.rank - b.rank || a.id - b.id;
      })
      .forEach(function (card) {
        var lane = state.lanes ? card.epic : config.epic;
        var group = groups.get(lane + ":" + card.status);
        if (!group) {
          return;
        }
        group.total += 1;
        totals[card.status] += 1;
        laneTotals.set(lane, (laneTotals.get(lane) || 0) + 1);
        if (matches(card, current)) {
          group.shown.push(card);
        }
      });
    state.visible = new Map();
    var work = [];
    state.columns.forEach(function (entry, columnKey) {
      var group = groups.get(columnKey);
      var status = entry.section.dataset.status;
      var folded = status === "canceled" && !showCanceled;
      var ids = group.shown.map(function (card) {
        return card.id;
      });
      state.visible.set(columnKey, folded ? [] : ids);
      if (entry.count) {
        updateWip(entry.section, entry.count, entry.warning, status, group.total);
      }
      var note = folded ? group.total + " canceled (folded)" : group.shown.length < group.total ? group.total - group.shown.length + " hidden by filters" : "";
      work.push({ entry: entry, cards: folded ? [] : group.shown, note: note });
    });
    if (state.lanes) {
      state.heads.forEach(function (head, status) {
        updateWip(head.wrapper, head.count, head.warning, status, totals[status]);
      });
      laneList().forEach(function (lane) {
        if (lane.countNode) {
          var count = laneTotals.get(lane.id) || 0;
          lane.countNode.textContent = count + (count === 1 ? " card" : " cards");
        }
      });
    }
    fillColumns(work);
    if (focusedId && (!document.activeElement || document.activeElement === document.body || document.activeElement.dataset.card !== focusedId)) {
      var again = boardNode.querySelector('.board-card[data-card="' + focusedId + '"]');
      if (again) {
        again.focus({ preventScroll: true });
      }
    }
  }

  function updateWip(section, count, warning, status, total) {
    var limit = Number(state.wip[status] || 0);
    count.textContent = limit ? total + " / " + limit : String(total);
    var over = !!limit && total > limit;
    section.classList.toggle("over-limit", over);
    warning.hidden = !over;
    count.title = over ? "Over the work-in-progress limit of " + limit : limit ? "Work-in-progress limit " + limit : "";
  }

  /* Put each column's cards in place. A column whose cards (and how they look) did not change is
   * left alone. The first draw shows the top of every column at once and adds the rest in slices of
   * about 10 ms between frames, so a board of thousands of cards answers clicks and keys early. */
  function fillColumns(work) {
    var firstDraw = !state.firstDrawDone;
    var rest = [];
    work.forEach(function (item) {
      var sigs = item.cards.map(signature);
      var key = item.note + "\u0002" + item.cards.map(function (card, index) {
        return card.id + "=" + sigs[index];
      }).join("\u0002");
      if (item.entry.key === key) {
        return;
      }
      item.entry.key = key;
      var count = firstDraw ? Math.min(FIRST_PER_COLUMN, item.cards.length) : item.cards.length;
      var nodes = item.cards.slice(0, count).map(function (card, index) {
        return nodeFor(card, sigs[index]);
      });
      setChildren(item.entry.list, nodes, count === item.cards.length ? item.note : "");
      if (count < item.cards.length) {
        rest.push({ entry: item.entry, key: key, cards: item.cards, sigs: sigs, from: count, note: item.note });
      }
    });
    if (!rest.length) {
      state.firstDrawDone = true;
      return;
    }
    state.firstDrawDone = true;
    state.drawing = true;
    boardNode.setAttribute("aria-busy", "true");
    function more() {
      var stop = performance.now() + SLICE_MS;
      while (rest.length && performance.now() < stop) {
        var item = rest[0];
        if (item.entry.key !== item.key) {
          rest.shift(); // a newer draw took this column over
          continue;
        }
        var fragment = document.createDocumentFragment();
        var end = Math.min(item.cards.length, item.from + 50);
        for (var index = item.from; index < end; index++) {
          fragment.appendChild(nodeFor(item.cards[index], item.sigs[index]));
        }
        item.from = end;
        if (item.from >= item.cards.length) {
          if (item.note) {
            fragment.appendChild(el("p", "muted folded-note", item.note));
          }
          rest.shift();
        }
        item.entry.list.appendChild(fragment);
      }
      if (rest.length) {
        requestAnimationFrame(more);
      } else {
        state.drawing = false;
        boardNode.setAttribute("aria-busy", "false");
      }
    }
    requestAnimationFrame(more);
  }

  function setChildren(list, nodes, note) {
    var fragment = document.createDocumentFragment();
    nodes.forEach(function (node) {
      fragment.appendChild(node);
    });
    if (note) {
      fragment.appendChild(el("p", "muted folded-note", note));
    }
    list.replaceChildren(fragment);
  }

  /* ---------- governed moves ---------- */

  function requestMove(id, target, position) {
    var card = state.cards.get(id);
    if (!card) {
      return;
    }
    state.errors.delete(id);
    if (WAITING[target]) {
      askWaitReason(card, target).then(function (answer) {
        if (answer) {
          move(id, target, answer.wait_reason, answer.reason, position);
        } else {
          render();
        }
      });
      return;
    }
    move(id, target, "", "", position);
  }

  function refuse(id, text) {
    state.errors.set(id, text);
    message("Card #" + id + " was not moved: " + text, "bad");
    render();
    var node = boardNode.querySelector('.board-card[data-card="' + id + '"]');
    if (node) {
      node.classList.add("snapped");
    }
  }

  function move(id, target, waitReason, reason, position) {
    var card = state.cards.get(id);
    var before = card.status;
    var beforeReason = card.wait_reason;
    var beforeRank = card.rank;
    // Show the move at once; put the card back if the rules refuse it.
    card.status = target;
    card.wait_reason = waitReason || "";
    if (position) {
      card.rank = guessRank(card, position);
    }
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
        var placed = card.rank;
        mergeCard(updated);
        message("Moved #" + id + " to " + LABELS[target] + ".", "ok");
        if (position) {
          state.cards.get(id).rank = placed; // keep the spot until the server has stored it
          render();
          return place(id, position, updated.rank);
        }
        render();
        return null;
      })
      .catch(function (error) {
        var current = state.cards.get(id);
        if (current && current.status === target) {
          current.status = before;
          current.wait_reason = beforeReason;
          current.rank = beforeRank;
        }
        refuse(id, error.message);
      });
  }

  /* A rank between the neighbours the card is dropped between, so the board shows the spot at once. */
  function guessRank(card, position) {
    var low = position.after ? state.cards.get(position.after) : null;
    var high = position.before ? state.cards.get(position.before) : null;
    if (low && high) {
      return (low.rank + high.rank) / 2;
    }
    if (high) {
      return high.rank - 0.5;
    }
    if (low) {
      return low.rank + 0.5;
    }
    return card.rank;
  }

  /* Store a card's place in its column: right before position.before, or right after position.after. */
  function place(id, position, restoreRank) {
    var body = position.before ? { before: position.before } : { after: position.after };
    return api("POST", config.api.cards + id + "/reorder/", body)
      .then(function (updated) {
        state.reorders += 1;
        mergeCard(updated);
        render();
      })
      .catch(function (error) {
        var current = state.cards.get(id);
        if (current) {
          current.rank = restoreRank;
        }
        if (error.data && error.data.code === "rank_neighbour_moved") {
          message(error.message, "bad");
          return loadBoard().then(render);
        }
        state.errors.set(id, error.message);
        message("Card #" + id + " kept its place: " + error.message, "bad");
        render();
        return null;
      });
  }

  function reorder(id, position) {
    var card = state.cards.get(id);
    if (!card || !config.canAct || (!position.before && !position.after)) {
      return;
    }
    state.errors.delete(id);
    var restore = card.rank;
    card.rank = guessRank(card, position);
    render();
    place(id, position, restore);
  }

  function columnKeyOf(card) {
    return (state.lanes ? card.epic : config.epic) + ":" + card.status;
  }

  /* up, down, top or bottom among the cards shown in the card's column. */
  function reorderBy(id, where) {
    var card = state.cards.get(id);
    if (!card) {
      return;
    }
    var ids = state.visible.get(columnKeyOf(card)) || [];
    var index = ids.indexOf(id);
    var others = ids.filter(function (other) {
      return other !== id;
    });
    var position = null;
    if (where === "up" && index > 0) {
      position = { before: ids[index - 1] };
    } else if (where === "down" && index >= 0 && index < ids.length - 1) {
      position = { after: ids[index + 1] };
    } else if (where === "top" && index > 0) {
      position = { before: others[0] };
    } else if (where === "bottom" && index >= 0 && index < ids.length - 1) {
      position = { after: others[others.length - 1] };
    }
    if (!position) {
      message("Card #" + id + " is already " + (where === "up" || where === "top" ? "at the top" : "at the bottom") + " of its column.", "");
      return;
    }
    reorder(id, position);
    var node = boardNode.querySelector('.board-card[data-card="' + id + '"]');
    if (node) {
      node.focus({ preventScroll: false });
    }
  }

  function mergeCard(full) {
    var card = {
      id: full.id,
      epic: full.epic,
      title: full.title,
      status: full.status,
      priority: full.priority,
      wait_reason: full.wait_reason,
      seat: full.seat,
      labels: full.labels,
      last_verification: full.last_verification,
      last_worked_by_seat: full.last_worked_by_seat,
      rank: full.rank,
      pull_request: full.pull_request,
      review_cycle: full.review_cycle,
      created_at: full.created_at,
      updated_at: full.updated_at
    };
    var known = state.lanes ? state.epics.some(function (epic) { return epic.id === full.epic; }) : full.epic === config.epic;
    if (!known) {
      state.cards.delete(full.id);
      if (state.lanes) {
        state.needsReload = true; // a card of an epic this board does not know yet
      }
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

  /* ---------- the move menu: one menu shared by every card ---------- */

  var menu = document.getElementById("move-popup");
  var menuFor = null; // {id, button}

  function menuItems() {
    return Array.from(menu.querySelectorAll("[role=menuitem]"));
  }

  function openMoveMenu(id, button) {
    var card = state.cards.get(id);
    if (!card || !config.canAct) {
      return;
    }
    closeMoveMenu(false);
    menu.textContent = "";
    var targets = config.transitions[card.status] || [];
    function group(title, items) {
      if (!items.length) {
        return;
      }
      menu.appendChild(el("p", "move-group", title));
      items.forEach(function (item) {
        var entry = el("button", "move-item", item.text);
        entry.type = "button";
        entry.setAttribute("role", "menuitem");
        entry.tabIndex = -1;
        entry.dataset.value = item.value;
        menu.appendChild(entry);
      });
    }
    group("Move to", targets.map(function (target) {
      return { value: target, text: LABELS[target] };
    }));
    group("Order in the column", ORDER_CHOICES);
    menu.setAttribute("aria-label", "Move card #" + id);
    menu.hidden = false;
    var box = button.getBoundingClientRect();
    var width = menu.offsetWidth;
    var left = Math.max(4, Math.min(box.left, document.documentElement.clientWidth - width - 4));
    var top = box.bottom + 2;
    if (top + menu.offsetHeight > document.documentElement.clientHeight - 4) {
      top = Math.max(4, box.top - menu.offsetHeight - 2);
    }
    menu.style.left = left + window.scrollX + "px";
    menu.style.top = top + window.scrollY + "px";
    button.setAttribute("aria-expanded", "true");
    menuFor = { id: id, button: button };
    var first = menuItems()[0];
    if (first) {
      first.focus();
    }
  }

  function closeMoveMenu(refocus) {
    if (!menuFor) {
      return;
    }
    var was = menuFor;
    menuFor = null;
    menu.hidden = true;
    was.button.setAttribute("aria-expanded", "false");
    if (refocus && document.body.contains(was.button)) {
      was.button.focus();
    }
  }

  function chooseFromMenu(value) {
    var id = menuFor ? menuFor.id : null;
    closeMoveMenu(false);
    if (!id || !value) {
      return;
    }
    var node = boardNode.querySelector('.board-card[data-card="' + id + '"]');
    if (node) {
      node.focus({ preventScroll: true });
    }
    if (value.indexOf("order:") === 0) {
      reorderBy(id, value.slice(6));
    } else {
      requestMove(id, value);
    }
  }

  if (menu) {
    menu.addEventListener("click", function (event) {
      var item = event.target.closest("[role=menuitem]");
      if (item) {
        chooseFromMenu(item.dataset.value);
      }
    });
    menu.addEventListener("keydown", function (event) {
      var items = menuItems();
      var index = items.indexOf(document.activeElement);
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        var step = event.key === "ArrowDown" ? 1 : -1;
        items[(index + step + items.length) % items.length].focus();
      } else if (event.key === "Home" || event.key === "End") {
        event.preventDefault();
        items[event.key === "Home" ? 0 : items.length - 1].focus();
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        closeMoveMenu(true);
      } else if (event.key === "Tab") {
        closeMoveMenu(true);
      }
      event.stopPropagation();
    });
    document.addEventListener("mousedown", function (event) {
      if (menuFor && !menu.contains(event.target) && event.target !== menuFor.button) {
        closeMoveMenu(false);
      }
    });
  }

  /* ---------- events on the board (delegated) ---------- */

  var marker = el("div", "drop-marker");
  marker.setAttribute("aria-hidden", "true");

  function cardOf(target) {
    return target && target.closest ? target.closest(".board-card") : null;
  }

  function clearDropTargets() {
    boardNode.querySelectorAll(".drop-target").forEach(function (node) {
      node.classList.remove("drop-target");
    });
    if (marker.parentNode) {
      marker.parentNode.removeChild(marker);
    }
  }

  function endDrag() {
    clearDropTargets();
    if (state.dragId !== null) {
      var node = boardNode.querySelector('.board-card[data-card="' + state.dragId + '"]');
      if (node) {
        node.classList.remove("dragging");
      }
      state.dragId = null;
      if (state.renderDeferred) {
        render();
      }
    }
  }

  /* The neighbours of the drop marker in its list, skipping the dragged card itself. */
  function markerPosition(list, dragged) {
    var after = null;
    var before = null;
    var seen = false;
    Array.prototype.forEach.call(list.children, function (child) {
      if (child === marker) {
        seen = true;
        return;
      }
      if (!child.classList.contains("board-card") || Number(child.dataset.card) === dragged) {
        return;
      }
      if (!seen) {
        after = Number(child.dataset.card);
      } else if (before === null) {
        before = Number(child.dataset.card);
      }
    });
    if (before === null && after === null) {
      return null;
    }
    return before !== null ? { before: before, after: after } : { after: after };
  }

  if (boardNode) {
    boardNode.addEventListener("click", function (event) {
      var moveButton = event.target.closest(".move-button");
      if (moveButton) {
        openMoveMenu(Number(cardOf(moveButton).dataset.card), moveButton);
        return;
      }
      if (event.target.closest("a, select, button, input")) {
        return;
      }
      var node = cardOf(event.target);
      if (node) {
        openDrawer(Number(node.dataset.card));
      }
    });
    boardNode.addEventListener("focusin", function (event) {
      var node = cardOf(event.target);
      if (node) {
        state.focused = Number(node.dataset.card);
      }
    });
    boardNode.addEventListener("dragstart", function (event) {
      var node = cardOf(event.target);
      if (!node) {
        return;
      }
      event.dataTransfer.setData("text/plain", node.dataset.card);
      event.dataTransfer.effectAllowed = "move";
      node.classList.add("dragging");
      state.dragId = Number(node.dataset.card);
    });
    boardNode.addEventListener("dragend", endDrag);
    boardNode.addEventListener("animationend", function (event) {
      // Card nodes are reused; without this the snap would replay whenever its column is redrawn.
      if (event.target.classList) {
        event.target.classList.remove("snapped");
      }
    });
    boardNode.addEventListener("dragover", function (event) {
      var column = event.target.closest ? event.target.closest(".column") : null;
      if (!column || !config.canAct || state.dragId === null) {
        return;
      }
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      if (!column.classList.contains("drop-target")) {
        clearDropTargets();
        column.classList.add("drop-target");
      }
      var list = column.querySelector(".column-cards");
      if (column.classList.contains("folded")) {
        return;
      }
      var over = cardOf(event.target);
      if (over && over.parentNode === list) {
        var box = over.getBoundingClientRect();
        var beforeIt = event.clientY < box.top + box.height / 2;
        var anchor = beforeIt ? over : over.nextSibling;
        if (marker.nextSibling !== anchor || marker.parentNode !== list) {
          list.insertBefore(marker, anchor);
        }
      } else if (marker.parentNode !== list) {
        var note = list.querySelector(".folded-note");
        list.insertBefore(marker, note);
      }
    });
    boardNode.addEventListener("dragleave", function (event) {
      // relatedTarget is where the pointer went; null means "unknown", so keep the marker then.
      if (event.relatedTarget && !boardNode.contains(event.relatedTarget)) {
        clearDropTargets();
      }
    });
    boardNode.addEventListener("drop", function (event) {
      var column = event.target.closest ? event.target.closest(".column") : null;
      if (!column) {
        return;
      }
      event.preventDefault();
      var id = Number(event.dataTransfer.getData("text/plain")) || state.dragId;
      var list = column.querySelector(".column-cards");
      var position = marker.parentNode === list ? markerPosition(list, id) : null;
      endDrag();
      var card = state.cards.get(id);
      if (!card) {
        return;
      }
      var status = column.dataset.status;
      if (state.lanes && Number(column.dataset.epic) !== card.epic) {
        message("Card #" + id + " belongs to another epic; drag it within its own lane.", "bad");
        return;
      }
      if (card.status !== status) {
        requestMove(id, status, position);
      } else if (position) {
        var ids = state.visible.get(columnKeyOf(card)) || [];
        var index = ids.indexOf(id);
        var unchanged = (position.before && ids[index + 1] === position.before) || (!position.before && position.after && ids[index - 1] === position.after);
        if (!unchanged) {
          reorder(id, position);
        }
      }
    });
  }

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
      // The Run dialog (run_dialog.js) asks for the profile and the cards at a time.
      var chosen = window.orketRunDialog ? window.orketRunDialog.choose(config.epic) : Promise.resolve({});
      chosen.then(function (body) {
        if (body) {
          startRun(body);
        }
      });
    });
  }

  function startRun(body) {
    runButton.disabled = true;
    api("POST", config.api.epic + config.epic + "/runs/", body)
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
  }

  /* ---------- the drawer ---------- */

  var drawer = document.getElementById("drawer");
  var drawerForm = document.getElementById("drawer-form");
  var lastFocus = null;

  function cardLabel(id) {
    var card = state.cards.get(id);
    return "#" + id + (card ? " " + card.title : "");
  }

  function fillDrawer(card, overwrite) {
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

  function openDrawer(id) {
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
    window.orketApprovals.drawer(id, config.canAct);
    loadRoles(summary ? summary.epic : config.epic);
  }

  function closeDrawer() {
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

  function loadHistory(id) {
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

  function loadTurns(id) {
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
  function loadRoles(epicId) {
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
      if (menuFor) {
        event.preventDefault();
        closeMoveMenu(true);
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
      var moveButton = target.querySelector(".move-button");
      if (moveButton) {
        event.preventDefault();
        openMoveMenu(Number(target.dataset.card), moveButton);
      }
    } else if (onCard && event.shiftKey && (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
      event.preventDefault();
      var card = state.cards.get(Number(target.dataset.card));
      var next = card && neighbourTarget(card, event.key === "ArrowRight" ? 1 : -1);
      if (next && config.canAct) {
        requestMove(card.id, next);
      }
    } else if (onCard && event.shiftKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      if (config.canAct) {
        reorderBy(Number(target.dataset.card), event.key === "ArrowUp" ? "up" : "down");
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
              loadTurns(id);
              document.dispatchEvent(new CustomEvent("orket:card-changed", { detail: { project: config.project, card: id } })); // card_diff.js
              window.orketApprovals.drawer(id, config.canAct);
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
        render(); // show the changes now; who is working on what follows below
        if (state.needsReload) {
          state.needsReload = false;
          return loadBoard();
        }
        return null;
      })
      .then(function () {
        // Agents move cards during a run: refresh who is working on what.
        var run = state.runs[0];
        if (run && (run.status === "running" || run.status === "queued")) {
          return loadRuns();
        }
        return null;
      })
      .catch(function () {
        return null;
      })
      .then(function () {
        state.fetching -= 1;
        refreshChoices();
        render();
      });
  }

  function reloadAll() {
    state.fetching += 1;
    return loadBoard()
      .catch(function (error) {
        message("The board could not be refreshed: " + error.message, "bad");
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
    } else if (frame.type === "epic.changed" || frame.type === "epic.created") {
      reloadAll();
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
  showCanceledInput.addEventListener("change", function () {
    writeUrl();
    render();
  });
  if (lanesInput) {
    lanesInput.addEventListener("change", function () {
      state.lanes = lanesInput.checked;
      writeUrl();
      message(state.lanes ? "Loading every epic of the project..." : "", "");
      reloadAll().then(function () {
        loadSearch().then(render);
        message(state.lanes ? "Showing every epic in its own lane." : "Showing one epic.", "ok");
      });
    });
  }
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
        reorders: state.reorders,
        lanes: state.lanes,
        ready: !!state.ready,
        drawn: !!state.ready && !state.drawing,
        heard: Array.from(state.heard),
        idle: !state.pending.size && !state.pendingTimer && !state.fetching && !state.drawing
      };
    },
    // The allowlist copy the drawer uses for description_html, as markup text (for tests).
    safeMarkup: function (html) {
      var holder = document.createElement("div");
      holder.appendChild(safeMarkup(html));
      return holder.innerHTML;
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
      state.ready = true;
      render();
      boardNode.dataset.ready = "1";
      if (!state.drawing) {
        boardNode.setAttribute("aria-busy", "false");
      }
    })
    .catch(function (error) {
      boardNode.setAttribute("aria-busy", "false");
      boardNode.textContent = "";
      message("The board could not be loaded: " + error.message, "bad");
    });
  connect();
})();
