/* The output of an agent's run_command / run_tests call in the run view: a fold under the call that
 * follows the command's log stream (/ws/logs/<id>/) while it runs and reads it back afterwards.
 *
 * `command.started` adds the fold; if the command is still running a moment later (no result yet,
 * as when the events arrive live rather than as backfill) the fold opens and streams. The call's
 * `tool.result` (or error) closes a fold that opened by itself; a reader's own choice is kept. */

import { el } from "./dom.js";
import { openLogStream } from "./log_stream.js";

const AUTO_OPEN_DELAY_MS = 300;

function existingFold(parent, streamId) {
  return parent.querySelector(`details[data-log-fold="${streamId}"]`);
}

function buildFold(parent, frame, streamId) {
  const fold = el("details", "line command-output fold");
  fold.dataset.logFold = String(streamId);
  const summary = el("summary", "fold-summary");
  summary.appendChild(el("span", "line-label", "Output of " + (frame.name || "the command")));
  const status = el("span", "muted command-output-status", "");
  summary.appendChild(status);
  fold.appendChild(summary);
  const body = el("div", "command-output-body");
  fold.appendChild(body);
  let handle = null;
  fold.addEventListener("toggle", function () {
    if (fold.open && handle === null) {
      handle = openLogStream(body, {
        streamId: streamId,
        maxLines: 2000,
        onStatus: function (text) {
          status.textContent = " " + text;
        },
      });
    }
    if (!fold.open) {
      delete fold.dataset.autoOpened;
    }
  });
  parent.appendChild(fold);
  return fold;
}

/* A fold for the frame's log stream under `parent` (once per stream); `live` allows it to open by itself. */
export function commandOutputFold(parent, frame, live) {
  const streamId = frame.log_stream;
  if (typeof streamId !== "number") {
    return;
  }
  const known = existingFold(parent, streamId);
  if (frame.kind !== "command.started") {
    if (known && known.dataset.autoOpened) {
      known.open = false;
    }
    if (known) {
      known.dataset.finished = "1";
      return;
    }
  }
  const fold = known || buildFold(parent, frame, streamId);
  if (frame.kind === "command.started" && live) {
    window.setTimeout(function () {
      if (!fold.dataset.finished && !fold.open) {
        fold.dataset.autoOpened = "1";
        fold.open = true;
      }
    }, AUTO_OPEN_DELAY_MS);
  } else if (frame.kind !== "command.started") {
    fold.dataset.finished = "1";
  }
}
