/* Drawing the board: the column layout (per lane when every epic is shown), then the cards of each
 * column, a list touched only when its cards changed, and a large first draw in slices between frames. */
import { nodeFor, signature } from "./cards.js";
import { FIRST_PER_COLUMN, LABELS, SLICE_MS, boardNode, config, state } from "./config.js";
import { filters, matches, showCanceledInput } from "./filters.js";
import { place } from "./moves.js";
import { el } from "../dom.js";

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

/* Rendering the cards into the layout. */

export function render() {
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
