import * as approvals from "../approvals.js";
import { config, state } from "./config.js";
import { loadComments, loadHistory, loadTurns } from "./drawer_panels.js";
import { refreshChoices } from "./filters.js";
import { loadBoard, loadRuns } from "./model.js";
import { mergeCard } from "./moves.js";
import { render } from "./render.js";
import { api, connection, message } from "./text.js";

/* ---------- live updates ---------- */

export function queueCard(id) {
  state.pending.add(id);
  if (!state.pendingTimer) {
    state.pendingTimer = setTimeout(flushPending, 50);
  }
}

export function flushPending() {
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
            approvals.drawer(id, config.canAct);
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

export function reloadAll() {
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

export function onFrame(frame) {
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

export function connect() {
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
