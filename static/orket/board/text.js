/* Helpers of the board: the API client worded for a board, messages, priorities and the allowlist copy of
 * server-sanitised markup. */
import { requestJSON } from "../api.js";
/* Every request of the board goes through the shared wrapper, worded for a board. */
export function api(method, url, body) {
  return requestJSON(method, url, body, describeError);
}

function sentence(text) {
  text = String(text).trim();
  if (text && !/[.!?]$/.test(text)) {
    text += ".";
  }
  return text;
}

function describeError(data, status) {
  if (data && data.detail) {
    var text = sentence(data.detail);
    if (data.errors && typeof data.errors === "object" && !Array.isArray(data.errors)) {
      var extra = [];
      Object.keys(data.errors).slice(1).forEach(function (key) {
        var value = data.errors[key];
        extra.push(sentence(key + ": " + (Array.isArray(value) ? value.join(" ") : String(value))));
      });
      if (extra.length) {
        text += " " + extra.join(" ");
      }
    }
    return text;
  }
  if (status === 403) {
    return "You may read this board but not change it.";
  }
  if (status === 404) {
    return "That card or project is gone, or you may not see it.";
  }
  return "The server could not do that (status " + status + "). Try again in a moment.";
}

export function priorityText(value) {
  var number = Number(value);
  if (number >= 3) {
    return "high";
  }
  if (number >= 2) {
    return "medium";
  }
  if (number >= 1) {
    return "low";
  }
  return "lowest";
}

export function message(text, kind) {
  var node = document.getElementById("board-message");
  node.textContent = text || "";
  node.dataset.kind = kind || "";
}

export function connection(text, kind) {
  var node = document.getElementById("board-connection");
  node.textContent = text;
  node.dataset.state = kind || "";
}

export function safeUrl(url) {
  var text = String(url || "").trim();
  return /^https?:\/\//i.test(text) ? text : null;
}

/* Copy server-sanitised HTML through an allowlist: tags are recreated, text goes in as text. */
var SAFE_TAGS = {
  P: true, BR: true, H3: true, H4: true, H5: true, H6: true, UL: true, OL: true, LI: true,
  BLOCKQUOTE: true, PRE: true, CODE: true, STRONG: true, EM: true, DEL: true, A: true, HR: true,
  TABLE: true, THEAD: true, TBODY: true, TR: true, TH: true, TD: true
};

export function safeMarkup(html) {
  var fragment = document.createDocumentFragment();
  if (!html) {
    return fragment;
  }
  var parsed = new DOMParser().parseFromString(String(html), "text/html");
  function copy(source, target) {
    source.childNodes.forEach(function (child) {
      if (child.nodeType === 3) {
        target.appendChild(document.createTextNode(child.nodeValue));
      } else if (child.nodeType === 1 && SAFE_TAGS[child.tagName]) {
        var node = document.createElement(child.tagName.toLowerCase());
        if (child.tagName === "A") {
          var href = child.getAttribute("href") || "";
          var local = !/^(\\|\/\\|\/\/)/.test(href); // not //host, /\host or \host
          if (local && (/^(https?:|mailto:|\/|#|\?|\.)/i.test(href) || !/^[^/?#]*:/.test(href))) {
            node.setAttribute("href", href);
          }
          node.setAttribute("rel", "nofollow noopener noreferrer");
        } else if (child.tagName === "OL" && /^\d{1,9}$/.test(child.getAttribute("start") || "")) {
          node.setAttribute("start", child.getAttribute("start"));
        }
        copy(child, node);
        target.appendChild(node);
      } else if (child.nodeType === 1) {
        copy(child, target); // an unknown element: keep only its text
      }
    });
  }
  copy(parsed.body, fragment);
  return fragment;
}
