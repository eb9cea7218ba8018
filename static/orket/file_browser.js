/* The card drawer's "Files" section: a read-only browser of the card's checkout. Folders list their
 * entries (links are shown, never followed); a file shows its highlighted lines, or what it is when it is
 * binary or large. Loads when the section is opened. */

import { cardApi, getJson, plural, renderFile } from "./code_render.js";
import { el } from "./dom.js";

const section = document.getElementById("card-files-section");
const holder = document.getElementById("card-files");
let current = null;

function crumbs(opened, path) {
  const bar = el("nav", "file-crumbs");
  bar.setAttribute("aria-label", "Folder");
  const parts = path ? path.split("/") : [];
  const top = el("button", "link-button", "checkout");
  top.type = "button";
  top.addEventListener("click", function () {
    openFolder(opened, "");
  });
  bar.appendChild(top);
  parts.forEach(function (part, index) {
    bar.appendChild(document.createTextNode(" / "));
    const target = parts.slice(0, index + 1).join("/");
    const button = el("button", "link-button", part);
    button.type = "button";
    button.addEventListener("click", function () {
      openFolder(opened, target);
    });
    bar.appendChild(button);
  });
  return bar;
}

function failed(opened, error) {
  if (current === opened) {
    holder.appendChild(el("p", "error", error.message));
  }
}

function openFolder(opened, path) {
  return getJson(cardApi(opened.project, opened.card) + "files/?path=" + encodeURIComponent(path))
    .then(function (data) {
      if (current !== opened) {
        return;
      }
      holder.textContent = "";
      if (!data.exists) {
        holder.appendChild(el("p", "muted", "The card has no checkout yet: no agent has worked on it."));
        return;
      }
      holder.appendChild(crumbs(opened, data.path));
      const list = el("ul", "file-list");
      data.entries.forEach(function (entry) {
        const item = el("li", "file-entry file-" + entry.kind);
        const target = data.path ? data.path + "/" + entry.name : entry.name;
        if (entry.kind === "dir" || entry.kind === "file") {
          const button = el("button", "link-button", entry.name + (entry.kind === "dir" ? "/" : ""));
          button.type = "button";
          button.addEventListener("click", function () {
            (entry.kind === "dir" ? openFolder : openFile)(opened, target);
          });
          item.appendChild(button);
          if (entry.kind === "file") {
            item.appendChild(el("span", "muted small", " " + plural(entry.size, "byte")));
          }
        } else {
          item.appendChild(el("span", null, entry.name));
          item.appendChild(el("span", "muted small", entry.kind === "link" ? " symbolic link, not followed" : " not a file"));
        }
        list.appendChild(item);
      });
      if (!data.entries.length) {
        list.appendChild(el("li", "muted", "This folder is empty."));
      }
      holder.appendChild(list);
      if (data.total > data.entries.length) {
        holder.appendChild(el("p", "diff-truncated", plural(data.total - data.entries.length, "more entry") + " not listed."));
      }
    })
    .catch(function (error) {
      failed(opened, error);
    });
}

function openFile(opened, path) {
  return getJson(cardApi(opened.project, opened.card) + "file/?path=" + encodeURIComponent(path))
    .then(function (data) {
      if (current !== opened) {
        return;
      }
      holder.textContent = "";
      holder.appendChild(crumbs(opened, path.split("/").slice(0, -1).join("/")));
      holder.appendChild(renderFile(data));
    })
    .catch(function (error) {
      failed(opened, error);
    });
}

if (section && holder) {
  document.addEventListener("orket:card-opened", function (event) {
    current = { project: event.detail.project, card: event.detail.card };
    holder.textContent = "";
    if (section.open) {
      openFolder(current, "");
    }
  });
  section.addEventListener("toggle", function () {
    if (section.open && current && !holder.childNodes.length) {
      openFolder(current, "");
    }
  });
}
