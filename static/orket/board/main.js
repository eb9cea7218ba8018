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
import { boardNode, config, state } from "./config.js";
import { wireBoardEvents } from "./drag.js";
import { wireDrawer } from "./drawer.js";
import { wireDrawerPanels } from "./drawer_panels.js";
import { wireKeyboard } from "./keyboard.js";
import { wireMoveMenu } from "./move_menu.js";
import { wireMoves } from "./moves.js";
import { wireNewCardAndRun } from "./new_card.js";
import { filterInputs, lanesInput, loadSearch, refreshChoices, searchChanged, showCanceledInput, writeUrl } from "./filters.js";
import { connect, reloadAll } from "./live.js";
import { loadBoard, loadRuns, loadSettings } from "./model.js";
import { render } from "./render.js";
import { message, safeMarkup } from "./text.js";

/* The filters above the board, kept in the URL. */
function wireFilters() {
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
}

/* The board's state and helpers for the browser tests and for debugging: the one deliberate global. */
function exposeForTests() {
  window.orketBoard = {
    state: function () {
      return {
        connected: !!state.live && state.live.connected(),
        reconnects: state.live ? state.live.reconnects() : 0,
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
      return !!state.live && state.live.drop("dropped on purpose");
    }
  };
}

/* Load what the board shows, draw it, then follow the project's live changes. */
function start() {
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
}

wireMoves();
wireMoveMenu();
wireBoardEvents();
wireNewCardAndRun();
wireDrawer();
wireDrawerPanels();
wireKeyboard();
wireFilters();
exposeForTests();
if (config.epic) {
  start();
}
