/* The move menu: one menu shared by every card, listing the allowed targets and the order moves. */
import { LABELS, ORDER_CHOICES, boardNode, config, state } from "./config.js";
import { move, reorderBy, requestMove } from "./moves.js";
import { el } from "../dom.js";

var menu = document.getElementById("move-popup");
export var menuFor = null; // {id, button}

function menuItems() {
  return Array.from(menu.querySelectorAll("[role=menuitem]"));
}

export function openMoveMenu(id, button) {
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

export function closeMoveMenu(refocus) {
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

/* The move menu's own keys and clicks. */
export function wireMoveMenu() {
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
}
