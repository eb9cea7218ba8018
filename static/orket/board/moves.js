/* Governed moves: status changes through the transition API (with the wait-reason dialog), and order
 * within a column through the reorder API, placed at once and put back when refused. */
import { LABELS, WAITING, boardNode, config, state } from "./config.js";
import { fillDrawer } from "./drawer.js";
import { loadBoard } from "./model.js";
import { render } from "./render.js";
import { api, message } from "./text.js";

export function requestMove(id, target, position) {
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

export function move(id, target, waitReason, reason, position) {
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
export function place(id, position, restoreRank) {
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

export function reorder(id, position) {
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

export function columnKeyOf(card) {
  return (state.lanes ? card.epic : config.epic) + ":" + card.status;
}

/* up, down, top or bottom among the cards shown in the card's column. */
export function reorderBy(id, where) {
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

export function mergeCard(full) {
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

export var waitDialog = document.getElementById("wait-dialog");
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

/* The wait dialog's buttons. */
export function wireMoves() {
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
}
