/* Events on the board, delegated to the board node: clicks on cards and their buttons, and drag and drop
 * between and within columns with a drop marker. */
import { boardNode, config, state } from "./config.js";
import { openDrawer } from "./drawer.js";
import { openMoveMenu } from "./move_menu.js";
import { columnKeyOf, reorder, requestMove } from "./moves.js";
import { render } from "./render.js";
import { el } from "../dom.js";
import { message } from "./text.js";

var marker = el("div", "drop-marker");

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

/* Clicks, keys and drags on the board, delegated to the board node. */
export function wireBoardEvents() {
  marker.setAttribute("aria-hidden", "true");

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
}
