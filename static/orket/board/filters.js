/* The filters above the board, kept in the URL, and the server-side text search. */
import { PRIORITY_WORDS, WAITING, config, state } from "./config.js";
import { render } from "./render.js";
import { el } from "../dom.js";
import { api } from "./text.js";

export var filterInputs = {
  q: document.getElementById("filter-q"),
  seat: document.getElementById("filter-seat"),
  label: document.getElementById("filter-label"),
  priority: document.getElementById("filter-priority"),
  status: document.getElementById("filter-status"),
  blocked: document.getElementById("filter-blocked")
};
export var showCanceledInput = document.getElementById("show-canceled");
export var lanesInput = document.getElementById("lanes-toggle");

export function filters() {
  return {
    q: filterInputs.q.value.trim(),
    seat: filterInputs.seat.value,
    label: filterInputs.label.value,
    priority: filterInputs.priority.value,
    status: filterInputs.status.value,
    blocked: filterInputs.blocked.checked ? "1" : ""
  };
}

export function writeUrl() {
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

export function matches(card, current) {
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

export function refreshChoices() {
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

export function searchChanged() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(function () {
    loadSearch().then(render);
    writeUrl();
  }, 200);
  writeUrl();
  render();
}

export function loadSearch() {
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
