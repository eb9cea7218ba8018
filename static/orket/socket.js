/* The one reconnecting WebSocket of Orket's pages (the board, the run view, log streams).
 *
 * It reconnects with a doubling backoff (0.5 s up to 10 s, plus a little jitter) after a lost
 * connection, and stops for good on a refusal (4401 session ended, 4403/4404 not visible) or when
 * the page says it is finished. `url()` is asked on every connect, so a page that resumes by sequence
 * number puts its last rendered seq in it and neither loses nor repeats a frame.
 *
 *   import { openSocket } from "./socket.js";
 *   const live = openSocket({
 *     url: () => socketUrl("/ws/runs/3/") + "?after=" + lastSeq,
 *     onOpen: (reconnects) => {},        // connected (reconnects: how many times it came back)
 *     onFrame: (frame) => {},            // each message, parsed as JSON (unparsable ones are dropped)
 *     onRefused: (code) => {},           // 4401, 4403 or 4404: no reconnect
 *     onLost: (waitMs) => {},            // the connection dropped; it comes back after waitMs
 *     finished: () => false,             // true: do not reconnect any more
 *   });
 *   live.close(1000, "done");  live.drop();  live.isOpen();  live.connected();  live.reconnects();
 */

export const REFUSALS = { 4401: true, 4403: true, 4404: true };
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10000;
const JITTER_MS = 250;

export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  return scheme + location.host + path;
}

export function openSocket(options) {
  const finished = options.finished || (() => false);
  const state = { socket: null, timer: null, backoff: FIRST_BACKOFF_MS, reconnects: 0, connected: false, closed: false };

  function connect() {
    state.timer = null;
    if (state.closed || finished()) {
      return;
    }
    const socket = new WebSocket(options.url());
    state.socket = socket;
    socket.onopen = function () {
      state.backoff = FIRST_BACKOFF_MS;
      state.connected = true;
      if (options.onOpen) {
        options.onOpen(state.reconnects);
      }
    };
    socket.onmessage = function (message) {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      options.onFrame(frame);
    };
    socket.onclose = function (event) {
      if (state.socket !== socket) {
        return; // closed on purpose by the page, or replaced
      }
      state.socket = null;
      state.connected = false;
      if (REFUSALS[event.code]) {
        if (options.onRefused) {
          options.onRefused(event.code);
        }
        return;
      }
      if (state.closed || finished()) {
        return;
      }
      const wait = state.backoff + Math.floor(Math.random() * JITTER_MS);
      state.backoff = Math.min(MAX_BACKOFF_MS, state.backoff * 2);
      state.reconnects += 1;
      state.timer = setTimeout(connect, wait);
      if (options.onLost) {
        options.onLost(wait);
      }
    };
  }

  connect();
  return {
    /* Stop listening: no reconnect after this. */
    close(code, reason) {
      state.closed = true;
      if (state.timer) {
        clearTimeout(state.timer);
        state.timer = null;
      }
      if (state.socket) {
        const socket = state.socket;
        state.socket = null;
        state.connected = false;
        socket.close(code, reason);
      }
    },
    /* Drop the connection as a network failure would (for tests and diagnostics): it comes back. */
    drop(reason) {
      if (state.socket) {
        state.socket.close(4000, reason);
        return true;
      }
      return false;
    },
    isOpen() {
      return !!(state.socket && state.socket.readyState === WebSocket.OPEN);
    },
    connected() {
      return state.connected;
    },
    reconnects() {
      return state.reconnects;
    },
  };
}
