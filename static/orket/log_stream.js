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

export const DEFAULT_MAX_LINES = 5000;

export function socketUrl(streamId, after) {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  return `${scheme}${location.host}/ws/logs/${encodeURIComponent(streamId)}/?after=${after}`;
}

export function openLogStream(container, options) {
  const streamId = Number(options.streamId);
  const maxLines = options.maxLines || DEFAULT_MAX_LINES;
  const onStatus = options.onStatus || (() => {});
  const state = { lastSeq: 0, socket: null, timer: null, backoff: 500, closed: false, finished: false, reconnects: 0 };
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

  function connect() {
    state.timer = null;
    if (state.closed) {
      return;
    }
    const socket = new WebSocket(socketUrl(streamId, state.lastSeq));
    state.socket = socket;
    socket.onopen = () => {
      state.backoff = 500;
      onStatus(state.reconnects ? `Live (resumed after line ${state.lastSeq}).` : "Live.", "live");
    };
    socket.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (typeof frame.seq === "number") {
        render(frame);
      } else if (frame.type === "closed") {
        state.finished = true;
        onStatus("Finished.", "done");
      } else if (frame.type === "hello" && frame.trimmed_through > state.lastSeq) {
        onStatus(`Live (the first ${frame.trimmed_through} lines are no longer kept).`, "live");
      }
    };
    socket.onclose = (event) => {
      if (state.socket !== socket) {
        return;
      }
      state.socket = null;
      if (event.code === 4401) {
        onStatus("Your session has ended; log in again to keep watching.", "bad");
        return;
      }
      if (event.code === 4403 || event.code === 4404) {
        onStatus("These logs are not visible to you.", "bad");
        return;
      }
      if (state.closed || state.finished) {
        return;
      }
      const wait = state.backoff + Math.floor(Math.random() * 250);
      state.backoff = Math.min(10000, state.backoff * 2);
      state.reconnects += 1;
      onStatus(`Connection lost; reconnecting in ${Math.ceil(wait / 1000)} s.`, "warn");
      state.timer = setTimeout(connect, wait);
    };
  }

  connect();
  return {
    close() {
      state.closed = true;
      if (state.timer) {
        clearTimeout(state.timer);
        state.timer = null;
      }
      if (state.socket) {
        const socket = state.socket;
        state.socket = null;
        socket.close(1000, "closed by the page");
      }
    },
    lastSeq() {
      return state.lastSeq;
    },
    // For tests and diagnostics: drop the connection as a network failure would; it resumes.
    dropConnection() {
      if (state.socket) {
        state.socket.close(4000, "dropped");
      }
    },
  };
}
