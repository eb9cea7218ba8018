/* Small helpers of the run view: formatting, the header's fields, throttling and reading the API. */
import { getJSON as fetchJSON } from "../api.js";
import { config } from "./config.js";

var PALETTE = ["#2f5bd3", "#c2410c", "#0f766e", "#7c3aed", "#b45309", "#be185d", "#15803d", "#0369a1", "#4d7c0f", "#9f1239"];

export function seatColor(seat) {
  var text = String(seat || "");
  var hash = 0;
  for (var i = 0; i < text.length; i++) {
    hash = (hash * 31 + text.charCodeAt(i)) >>> 0;
  }
  return PALETTE[hash % PALETTE.length];
}

export function atMs(frame) {
  var value = Date.parse(frame && frame.at);
  return isNaN(value) ? null : value;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) {
    return "-";
  }
  var whole = Math.max(0, Math.floor(seconds));
  var h = Math.floor(whole / 3600);
  var m = Math.floor((whole % 3600) / 60);
  var s = whole % 60;
  if (h) {
    return h + "h " + String(m).padStart(2, "0") + "m " + String(s).padStart(2, "0") + "s";
  }
  if (m) {
    return m + "m " + String(s).padStart(2, "0") + "s";
  }
  return s + "s";
}

export function pretty(value) {
  if (value === undefined) {
    return "";
  }
  if (typeof value === "string") {
    return value;
  }
  try {
    return JSON.stringify(value, null, 2);
  } catch (error) {
    return String(value);
  }
}

export function number(value) {
  return Number(value || 0).toLocaleString("en-US");
}

export function field(name) {
  return document.querySelector('[data-field="' + name + '"]');
}

export function setText(name, text) {
  var node = field(name);
  if (node) {
    node.textContent = text;
  }
}

export function throttle(fn, wait) {
  var timer = null;
  var last = 0;
  return function () {
    if (timer !== null) {
      return;
    }
    var delay = Math.max(0, wait - (Date.now() - last));
    timer = setTimeout(function () {
      timer = null;
      last = Date.now();
      fn();
    }, delay);
  };
}

export function getJSON(url) {
  return fetchJSON(url, function (data, status) {
    return url + " answered " + status;
  });
}

export function fetchAllTurns(url) {
  var turns = [];
  function page(address) {
    return getJSON(address).then(function (data) {
      var results = Array.isArray(data) ? data : data.results || [];
      turns = turns.concat(results);
      if (data && data.next) {
        return page(data.next);
      }
      return turns;
    });
  }
  return page(url + "?page_size=500");
}

var cardTitles = config ? config.cards || {} : {};

/* A replay of another run's export names its cards by number only. */
export function setCardTitles(titles) {
  cardTitles = titles;
}

export function cardTitle(cardId) {
  var title = cardTitles[String(cardId)];
  return title ? "#" + cardId + " " + title : "Card #" + cardId;
}
