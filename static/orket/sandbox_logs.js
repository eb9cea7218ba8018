/* The sandboxes page's log panel: the Logs button of a row opens that sandbox's live log stream
 * (log_stream.js) instead of polling. A sandbox without a stream yet (started before streams
 * existed) shows its stored logs once. */
import { request } from "./api.js";
import { openLogStream } from "./log_stream.js";

const table = document.getElementById("sandboxes");
const box = document.getElementById("sandbox-logs");
const lines = document.getElementById("sandbox-logs-text");
const name = document.getElementById("sandbox-logs-name");
const when = document.getElementById("sandbox-logs-when");
let current = null;

function stop() {
  if (current) {
    current.close();
    current = null;
  }
}

function show(row) {
  stop();
  lines.replaceChildren();
  name.textContent = row.querySelector("code").textContent;
  box.hidden = false;
  const streamId = row.getAttribute("data-log-stream");
  if (streamId) {
    when.textContent = "connecting...";
    current = openLogStream(lines, {
      projectId: Number(table.getAttribute("data-project")),
      streamId: Number(streamId),
      onStatus: (text, kind) => {
        when.textContent = text;
        when.setAttribute("data-kind", kind);
      },
    });
    return;
  }
  when.textContent = "stored logs (no live stream for this sandbox)";
  lines.classList.add("log-stream"); // keeps the line breaks of the stored text
  request("GET", `/api/sandboxes/${row.getAttribute("data-sandbox")}/logs/?tail=300`)
    .then((response) => response.json())
    .then((data) => {
      lines.textContent = data.text || "(no output yet)";
    })
    .catch((error) => {
      lines.textContent = `Could not read the logs: ${error.message}`;
    });
}

if (table && box) {
  table.addEventListener("click", (event) => {
    const button = event.target.closest('button[data-action="logs"]');
    if (button) {
      show(button.closest("tr[data-sandbox]"));
    }
  });
  document.getElementById("sandbox-logs-close").addEventListener("click", () => {
    stop();
    box.hidden = true;
  });
  window.orketSandboxLogs = { current: () => current }; // for tests: the open stream's handle
}
