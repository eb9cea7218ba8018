/* Drawing a card's code: a diff (files changed with their counts, then each file's hunks) and a file's
 * lines. The server sends each line as [css class, text] pairs from its highlighter; the text goes in with
 * textContent, so nothing a file holds is ever read as markup. Shared by the card drawer and the run view. */

import { request } from "./api.js";
import { el } from "./dom.js";

const STATUS_WORDS = { added: "added", removed: "removed", renamed: "renamed", copied: "copied", modified: "modified" };

/* Fill `node` with a line's highlighted tokens. */
export function fillTokens(node, tokens, text) {
  if (!Array.isArray(tokens)) {
    node.textContent = text || "";
    return;
  }
  tokens.forEach(function (pair) {
    const cls = String(pair[0] || "");
    const part = String(pair[1] || "");
    if (cls && /^[a-z0-9]{1,4}$/.test(cls)) {
      node.appendChild(el("span", cls, part));
    } else {
      node.appendChild(document.createTextNode(part));
    }
  });
}

export function plural(count, word) {
  return count + " " + word + (count === 1 ? "" : "s");
}

/* The one-line summary of a diff: files changed, lines added and removed. */
export function diffSummary(data) {
  const files = data.files || [];
  return plural(files.length, "file") + " changed, +" + (data.added || 0) + " \u2212" + (data.removed || 0);
}

function fileHead(file) {
  const head = el("div", "diff-file-head");
  const status = file.binary ? "binary" : STATUS_WORDS[file.status] || "modified";
  head.appendChild(el("span", "diff-status diff-status-" + (file.status || "modified"), STATUS_WORDS[file.status] || "modified"));
  if (file.binary) {
    head.appendChild(el("span", "diff-status diff-status-binary", "binary"));
  }
  const name = file.status === "renamed" || file.status === "copied" ? file.old_path + " \u2192 " + file.path : file.path;
  head.appendChild(el("span", "diff-path", name));
  if (!file.binary) {
    head.appendChild(el("span", "diff-count diff-count-add", "+" + file.added));
    head.appendChild(el("span", "diff-count diff-count-del", "\u2212" + file.removed));
  }
  head.dataset.status = status;
  return head;
}

function hunkRows(table, hunk) {
  const header = el("tr", "diff-hunk-head");
  const cell = el("td", null, hunk.header);
  cell.colSpan = 4;
  header.appendChild(cell);
  table.appendChild(header);
  (hunk.lines || []).forEach(function (line) {
    const row = el("tr", "diff-line diff-" + line.kind);
    row.dataset.kind = line.kind;
    row.appendChild(el("td", "diff-no", line.old === null || line.old === undefined ? "" : line.old));
    row.appendChild(el("td", "diff-no", line.new === null || line.new === undefined ? "" : line.new));
    row.appendChild(el("td", "diff-sign", line.kind === "add" ? "+" : line.kind === "del" ? "-" : line.kind === "note" ? "\\" : " "));
    const code = el("td", "diff-code code-tokens");
    fillTokens(code, line.kind === "note" ? null : line.tokens, line.text);
    row.appendChild(code);
    table.appendChild(row);
  });
}

/* A diff as the server sends it (GET .../diff/), drawn as a list of files then each file's hunks. */
export function renderDiff(data) {
  const root = el("div", "diff-view");
  const files = data.files || [];
  if (!files.length) {
    root.appendChild(el("p", "muted diff-empty", data.note || "No changes."));
    return root;
  }
  root.appendChild(el("p", "diff-summary", diffSummary(data)));
  if (data.truncated) {
    root.appendChild(
      el(
        "p",
        "diff-truncated",
        "The diff is too large to show whole: " + plural(data.files_not_shown, "file") + " with " + plural(data.lines_not_shown, "changed line") + " not shown."
      )
    );
  }
  const list = el("ul", "diff-files");
  files.forEach(function (file, index) {
    const item = el("li");
    const link = el("a", null, file.path);
    link.href = "#diff-file-" + index;
    link.addEventListener("click", function (event) {
      event.preventDefault();
      const target = root.querySelector('[data-index="' + index + '"]');
      if (target) {
        target.scrollIntoView({ block: "start" });
      }
    });
    item.appendChild(fileHead(file));
    item.querySelector(".diff-path").replaceWith(link);
    list.appendChild(item);
  });
  root.appendChild(list);
  files.forEach(function (file, index) {
    const section = el("section", "diff-file");
    section.dataset.index = String(index);
    section.dataset.path = file.path;
    section.appendChild(fileHead(file));
    if (file.binary) {
      section.appendChild(el("p", "muted", "Binary file, not shown."));
    } else if (!file.shown) {
      section.appendChild(el("p", "diff-truncated", "Not shown: the diff is too large (+" + file.added + " \u2212" + file.removed + ")."));
    } else if (!(file.hunks || []).length) {
      section.appendChild(el("p", "muted", "No content changes (mode or name only)."));
    } else {
      const table = el("table", "diff-table");
      file.hunks.forEach(function (hunk) {
        hunkRows(table, hunk);
      });
      section.appendChild(table);
    }
    root.appendChild(section);
  });
  return root;
}

/* A file as the server sends it (GET .../file/): its lines, or what it is when it is not shown. */
export function renderFile(data) {
  const root = el("div", "file-view");
  const facts = [plural(data.size || 0, "byte")];
  if (data.type) {
    facts.push(data.type);
  }
  root.appendChild(el("p", "file-facts", data.path + " \u00b7 " + facts.join(" \u00b7 ")));
  if (data.kind === "binary") {
    root.appendChild(el("p", "muted file-summary", "Binary file, not shown."));
    return root;
  }
  if (data.kind === "large") {
    root.appendChild(el("p", "diff-truncated file-summary", "Large file: only the first " + plural(data.lines_shown || 0, "line") + " are shown."));
  }
  const table = el("table", "diff-table file-lines");
  (data.lines || []).forEach(function (tokens, index) {
    const row = el("tr", "file-line");
    row.appendChild(el("td", "diff-no", index + 1));
    const code = el("td", "diff-code code-tokens");
    fillTokens(code, tokens, "");
    row.appendChild(code);
    table.appendChild(row);
  });
  root.appendChild(table);
  return root;
}

/* GET a JSON document of the API; rejects with the server's own message. */
export function getJson(url) {
  return request("GET", url).then(function (response) {
    return response.json().then(
      function (body) {
        if (!response.ok) {
          throw new Error(body.detail || "HTTP " + response.status);
        }
        return body;
      },
      function () {
        throw new Error("HTTP " + response.status);
      }
    );
  });
}

export function cardApi(project, card) {
  return "/api/projects/" + encodeURIComponent(project) + "/cards/" + encodeURIComponent(card) + "/";
}
