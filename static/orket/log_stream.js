/* A live log stream (/ws/logs/{id}/) rendered into a container: one line element per line, stderr
 * marked, the newest kept (at most `maxLines`), following the bottom unless the reader scrolled up.
 * The socket reconnects with backoff and resumes after the last sequence number it rendered, so no
 * line is lost or shown twice. Text always goes in with textContent.
 *
 *   import { openLogStream } from "./log_stream.js";
 *   const handle = openLogStream(container, { projectId: 3, streamId: 17, onStatus: (text, kind) => {} });
 *   handle.close();            // stop listening (the lines stay)
 *   handle.lastSeq();          // the last line rendered
 *
 * `projectId` is informational (the server checks membership from the stream); `onStatus` hears
 * "Live.", "Reconnecting...", "Finished." and refusals, with a kind of live, warn, done or bad.
 */

import { el } from "./dom.js";
import { openSocket, socketUrl } from "./socket.js";

export const DEFAULT_MAX_LINES = 5000;

export function logSocketUrl(streamId, after) {
  return socketUrl(`/ws/logs/${encodeURIComponent(streamId)}/?after=${after}`);
}

export function openLogStream(container, options) {
  const streamId = Number(options.streamId);
  const maxLines = options.maxLines || DEFAULT_MAX_LINES;
  const onStatus = options.onStatus || (() => {});
  const state = { lastSeq: 0, finished: false };
  container.classList.add("log-stream");
  container.setAttribute("data-stream", String(streamId));
  if (options.projectId !== undefined) {
    container.setAttribute("data-project", String(options.projectId));
  }

  function atBottom() {
    return container.scrollHeight - container.scrollTop - container.clientHeight < 24;
  }

  function render(frame) {
    if (frame.seq <= state.lastSeq) {
      return; // already shown (the server never sends one twice; this guards a page that reopens)
    }
    const follow = atBottom();
    const line = el("div", frame.channel === "stderr" ? "log-line log-stderr" : "log-line", frame.text === "" ? "\u00a0" : frame.text);
    line.setAttribute("data-seq", String(frame.seq));
    container.appendChild(line);
    state.lastSeq = frame.seq;
    while (container.childElementCount > maxLines) {
      container.removeChild(container.firstElementChild);
    }
    if (follow) {
      container.scrollTop = container.scrollHeight;
    }
  }

  function onFrame(frame) {
    if (typeof frame.seq === "number") {
      render(frame);
    } else if (frame.type === "closed") {
      state.finished = true;
      onStatus("Finished.", "done");
    } else if (frame.type === "hello" && frame.trimmed_through > state.lastSeq) {
      onStatus(`Live (the first ${frame.trimmed_through} lines are no longer kept).`, "live");
    }
  }

  const live = openSocket({
    url: () => logSocketUrl(streamId, state.lastSeq),
    onOpen: (reconnects) => onStatus(reconnects ? `Live (resumed after line ${state.lastSeq}).` : "Live.", "live"),
    onFrame: onFrame,
    onRefused: (code) =>
      onStatus(code === 4401 ? "Your session has ended; log in again to keep watching." : "These logs are not visible to you.", "bad"),
    onLost: (wait) => onStatus(`Connection lost; reconnecting in ${Math.ceil(wait / 1000)} s.`, "warn"),
    finished: () => state.finished,
  });
  return {
    close() {
      live.close(1000, "closed by the page");
    },
    lastSeq() {
      return state.lastSeq;
    },
    // For tests and diagnostics: drop the connection as a network failure would; it resumes.
    dropConnection() {
      live.drop("dropped");
    },
  };
}
