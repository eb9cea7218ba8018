/* The card drawer's "Changes" section: the card branch against its base, for the whole card or for one
 * turn (chosen in a list of the turns that made commits). board.js announces each opened card with the
 * "orket:card-opened" event, and a change of the open card (from the board's live updates) with
 * "orket:card-changed", on which the list and the diff shown are read again in place. */

import { cardApi, getJson, renderDiff } from "./code_render.js";
import { el } from "./dom.js";

const holder = document.getElementById("card-diff");
const choice = document.getElementById("card-diff-scope");
let current = null; // {project, card}

function stillOpen(opened) {
  return current && current.card === opened.card && current.project === opened.project;
}

function show(opened, turn, quietly) {
  const query = turn ? "?turn=" + encodeURIComponent(turn) : "";
  if (!quietly) {
    holder.textContent = "";
    holder.appendChild(el("p", "muted", "Loading the changes..."));
    holder.dataset.state = "loading";
  }
  return getJson(cardApi(opened.project, opened.card) + "diff/" + query)
    .then(function (data) {
      if (!stillOpen(opened)) {
        return;
      }
      holder.textContent = "";
      if (data.merged) {
        holder.appendChild(el("p", "muted small", "Merged: shown against the base branch as it was before the merge."));
      }
      holder.appendChild(renderDiff(data));
      holder.dataset.state = "loaded";
    })
    .catch(function (error) {
      if (stillOpen(opened)) {
        holder.textContent = "";
        holder.appendChild(el("p", "error", "The changes could not be loaded: " + error.message));
        holder.dataset.state = "failed";
      }
    });
}

function loadTurns(opened) {
  return getJson(cardApi(opened.project, opened.card) + "diff/turns/").then(function (data) {
    if (!stillOpen(opened)) {
      return;
    }
    const chosen = choice.value;
    choice.textContent = "";
    choice.appendChild(new Option("The whole card", ""));
    (data.results || []).forEach(function (turn) {
      const files = new Set();
      turn.commits.forEach(function (commit) {
        (commit.files || []).forEach(function (name) {
          files.add(name);
        });
      });
      const label = "Run #" + turn.run + ", turn " + turn.number + " (" + turn.seat + ", " + files.size + (files.size === 1 ? " file)" : " files)");
      choice.appendChild(new Option(label, String(turn.id)));
    });
    choice.value = chosen;
    if (choice.value !== chosen) {
      choice.value = "";
    }
  });
}

if (holder && choice) {
  document.addEventListener("orket:card-opened", function (event) {
    current = { project: event.detail.project, card: event.detail.card };
    const opened = current;
    choice.textContent = "";
    choice.appendChild(new Option("The whole card", ""));
    loadTurns(opened).catch(function () {
      /* the list stays at "the whole card"; the diff below says what went wrong */
    });
    show(opened, "", false);
  });
  document.addEventListener("orket:card-changed", function (event) {
    if (current && current.card === event.detail.card && holder.dataset.state !== "loading") {
      const opened = current;
      loadTurns(opened)
        .catch(function () {})
        .then(function () {
          if (stillOpen(opened)) {
            show(opened, choice.value, true);
          }
        });
    }
  });
  choice.addEventListener("change", function () {
    if (current) {
      show(current, choice.value, false);
    }
  });
}
