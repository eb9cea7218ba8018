/* Keyboard use of the board: focus moves between cards, moves and reorders without a mouse. */
import { boardNode, config, state } from "./config.js";
import { closeDrawer, drawer, openDrawer } from "./drawer.js";
import { filterInputs } from "./filters.js";
import { closeMoveMenu, menuFor, openMoveMenu } from "./move_menu.js";
import { reorderBy, requestMove, waitDialog } from "./moves.js";
import { newDialog, openNewCard } from "./new_card.js";

function visibleCards() {
  return Array.from(boardNode ? boardNode.querySelectorAll(".board-card") : []);
}

export function focusCard(id) {
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

/* The board's keyboard shortcuts. */
export function wireKeyboard() {
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
}
