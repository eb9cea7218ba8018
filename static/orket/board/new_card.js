/* The New card dialog and the Run epic button (the Run dialog is ../run_dialog.js). */
import * as runDialog from "../run_dialog.js";
import { boardNode, config } from "./config.js";
import { refreshChoices } from "./filters.js";
import { loadRuns } from "./model.js";
import { mergeCard } from "./moves.js";
import { render } from "./render.js";
import { el } from "../dom.js";
import { api, message } from "./text.js";

export var newDialog = document.getElementById("new-dialog");

export function openNewCard() {
  if (!config.canAct || !config.epic) {
    return;
  }
  document.getElementById("new-form").reset();
  document.getElementById("new-error").textContent = "";
  newDialog.showModal();
  document.getElementById("new-card-title").focus();
}

var newButton = document.getElementById("new-card");

/* Runs of the epic. */

var runButton = document.getElementById("run-epic");

function startRun(body) {
  runButton.disabled = true;
  api("POST", config.api.epic + config.epic + "/runs/", body)
    .then(function (run) {
      message("", "");
      var node = document.getElementById("board-message");
      node.appendChild(document.createTextNode("Started run "));
      var link = el("a", null, "#" + run.id);
      link.href = config.runView + run.id + "/";
      link.id = "started-run";
      node.appendChild(link);
      node.appendChild(document.createTextNode("."));
      node.dataset.kind = "ok";
      return loadRuns();
    })
    .catch(function (error) {
      message("The run did not start: " + error.message, "bad");
    })
    .then(function () {
      runButton.disabled = false;
      render();
    });
}

/* The New card dialog and the Run epic button. */
export function wireNewCardAndRun() {
  document.getElementById("new-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var body = {
      epic: config.epic,
      title: document.getElementById("new-card-title").value.trim(),
      priority: document.getElementById("new-card-priority").value
    };
    var seat = document.getElementById("new-card-seat").value.trim();
    if (seat) {
      body.seat = seat;
    }
    if (!body.title) {
      return;
    }
    api("POST", config.api.cards, body)
      .then(function (card) {
        newDialog.close();
        mergeCard(card);
        refreshChoices();
        render();
        message("Created card #" + card.id + ".", "ok");
        var node = boardNode.querySelector('.board-card[data-card="' + card.id + '"]');
        if (node) {
          node.focus();
        }
      })
      .catch(function (error) {
        document.getElementById("new-error").textContent = error.message;
      });
  });
  document.getElementById("new-cancel").addEventListener("click", function () {
    newDialog.close();
  });

  if (newButton) {
    newButton.addEventListener("click", openNewCard);
  }

  if (runButton) {
    runButton.addEventListener("click", function () {
      // The Run dialog (run_dialog.js) asks for the profile and the cards at a time.
      var chosen = runDialog.choose(config.epic);
      chosen.then(function (body) {
        if (body) {
          startRun(body);
        }
      });
    });
  }
}
