/* Live updates: frames of the project's board socket name the cards that changed; they are fetched
 * again in one batch and merged. */
import * as approvals from "../approvals.js";
import { config, state } from "./config.js";
import { loadComments, loadHistory, loadTurns } from "./drawer_panels.js";
import { refreshChoices } from "./filters.js";
import { loadBoard, loadRuns } from "./model.js";
import { mergeCard } from "./moves.js";
import { render } from "./render.js";
import { openSocket, socketUrl } from "../socket.js";
import { api, connection, message } from "./text.js";

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

/* The project's board socket (../socket.js reconnects it); after a reconnect the board reloads,
 * since changes may have happened while the socket was down. */
export function connect() {
  state.live = openSocket({
    url: function () {
      return socketUrl(config.ws);
    },
    onOpen: function (reconnects) {
      connection(reconnects ? "Live (reconnected)." : "Live.", "live");
      if (reconnects) {
        Promise.all([loadBoard(), loadRuns()]).then(function () {
          refreshChoices();
          render();
        });
      }
    },
    onFrame: onFrame,
    onRefused: function (code) {
      if (code === 4401) {
        connection("Your session has ended; log in again to see live changes.", "bad");
      } else {
        connection("This board is not visible to you.", "bad");
      }
    },
    onLost: function (wait) {
      connection("Connection lost; reconnecting in " + Math.ceil(wait / 1000) + " s.", "warn");
    }
  });
}
