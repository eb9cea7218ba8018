/* The sandboxes page: start, stop and delete through the API (CSRF header), and a reload
   of the table while something is changing (live logs: sandbox_logs.js). Text always goes in with
   textContent. */
import { requestJSON } from "./api.js";

function wire(table) {
  var projectId = table.getAttribute("data-project");
  var message = document.getElementById("sandbox-message");
  var logsBox = document.getElementById("sandbox-logs");

  function api(method, path, body) {
    return requestJSON(method, path, body, function (data, status, response) {
      return data.detail || response.statusText;
    });
  }

  function say(text) {
    if (message) {
      message.textContent = text;
    }
  }

  table.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) {
      return;
    }
    var row = button.closest("tr[data-sandbox]");
    var id = row.getAttribute("data-sandbox");
    var action = button.getAttribute("data-action");
    if (action === "logs") {
      return; // sandbox_logs.js opens the live stream
    }
    if (action === "delete" && !window.confirm("Delete this sandbox, its containers and its data?")) {
      return;
    }
    button.disabled = true;
    api("POST", "/api/sandboxes/" + id + "/" + action + "/").then(function () {
      window.location.reload();
    }).catch(function (error) {
      button.disabled = false;
      window.alert(error.message);
    });
  });

  var form = document.getElementById("sandbox-create");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var card = form.elements.card.value;
      var body = card ? { card: Number(card) } : { project: Number(projectId) };
      say("Starting...");
      api("POST", "/api/sandboxes/", body).then(function () {
        window.location.reload();
      }).catch(function (error) {
        say(error.message);
      });
    });
  }

  // While a sandbox is starting or stopping, reload the table now and then.
  if (table.querySelector('[data-status="creating"], [data-status="stopping"]')) {
    setTimeout(function () {
      if (logsBox.hidden) {
        window.location.reload();
      }
    }, 4000);
  }
}

const sandboxTable = document.getElementById("sandboxes");
if (sandboxTable) {
  wire(sandboxTable);
}
