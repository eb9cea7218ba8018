/* Live mode of the run view: frames from the run's WebSocket (../socket.js reconnects it and resumes
 * after the last rendered seq), the header and charts refreshed from the API as the run moves, and
 * the socket let go once the run is final and every event is shown. */
import * as approvals from "../approvals.js";
import { requestJSON } from "../api.js";
import { openSocket, socketUrl } from "../socket.js";
import { Charts } from "./charts.js";
import { TURN_END, config } from "./config.js";
import { connection, header } from "./header.js";
import { Renderer } from "./transcript.js";
import { fetchAllTurns, getJSON, throttle } from "./util.js";

/* The live view's parts: the renderer and charts, what it knows of the run, the socket, and the
 * throttled refreshers every step shares. */
function createLiveView() {
  var view = {
    charts: new Charts(),
    renderer: null,
    state: { done: false, closing: false, knownLastSeq: null },
    live: null
  };
  view.redraw = throttle(function () {
    view.charts.draw(view.renderer, Date.now());
  }, 500);
  view.refreshTurns = throttle(function () {
    fetchAllTurns(config.api.turns)
      .then(function (turns) {
        view.charts.setTurns(turns);
        view.redraw();
      })
      .catch(function () {});
  }, 1500);
  view.refreshRun = throttle(function () {
    getJSON(config.api.run)
      .then(function (run) {
        header.showRun(run);
        view.state.knownLastSeq = run.last_seq;
        maybeFinish(view);
      })
      .catch(function (error) {
        connection("Could not refresh the run: " + error.message, "bad");
      });
  }, 750);
  view.renderer = new Renderer({
    onFrame: function (frame) {
      followFrame(view, frame);
    }
  });
  return view;
}

/* What a rendered frame asks of the rest of the page. */
function followFrame(view, frame) {
  var kind = frame.kind;
  if (kind === "run.status" || kind === "run.cancel_requested" || kind.indexOf("turn.") === 0 || kind === "card.status") {
    view.refreshRun();
  }
  if (TURN_END[kind]) {
    view.refreshTurns();
  }
  if (kind.indexOf("approval.") === 0) {
    approvals.runPage(config.run, config.canCancel);
  }
  if (kind === "turn.started" || TURN_END[kind] || kind === "tool.refused") {
    view.redraw();
  }
}

function caughtUp(view) {
  return header.final && view.state.knownLastSeq !== null && view.renderer.lastSeq >= view.state.knownLastSeq;
}

/* A final run whose every event is shown: check once more a little later (the engine may still
 * write an event or two after the final status), then let the socket go. */
function maybeFinish(view) {
  var state = view.state;
  if (!caughtUp(view) || state.done || state.closing) {
    return;
  }
  state.closing = true;
  setTimeout(function () {
    getJSON(config.api.run)
      .then(function (run) {
        header.showRun(run);
        state.knownLastSeq = run.last_seq;
      })
      .catch(function () {})
      .then(function () {
        state.closing = false;
        if (caughtUp(view)) {
          finish(view);
        }
      });
  }, 1500);
}

function finish(view) {
  if (!view.state.done) {
    view.state.done = true;
    connection("The run is finished; every event is shown.", "done");
    if (view.live) {
      view.live.close(1000, "run finished");
    }
    view.refreshTurns();
    view.redraw();
  }
}

function connectLive(view) {
  view.live = openSocket({
    url: function () {
      return socketUrl(config.ws) + "?after=" + view.renderer.lastSeq;
    },
    onOpen: function (reconnects) {
      connection(reconnects ? "Live (reconnected; resumed after event " + view.renderer.lastSeq + ")." : "Live.", "live");
    },
    onFrame: function (frame) {
      view.renderer.render(frame);
      maybeFinish(view);
    },
    onRefused: function (code) {
      if (code === 4401) {
        connection("Your session has ended; log in again to keep watching.", "bad");
      } else {
        connection("This run is not visible to you.", "bad");
      }
    },
    onLost: function (wait) {
      connection("Connection lost; reconnecting in " + Math.ceil(wait / 1000) + " s.", "warn");
      view.refreshRun();
    },
    finished: function () {
      return view.state.done;
    }
  });
}

function wireCancel() {
  var cancel = document.getElementById("run-cancel");
  if (!cancel) {
    return;
  }
  cancel.addEventListener("click", function () {
    if (!window.confirm("Cancel this run?")) {
      return;
    }
    cancel.disabled = true;
    requestJSON("POST", config.api.cancel, undefined, function (data, status) {
      return "the server answered " + status;
    })
      .then(function (run) {
        header.showRun(run);
      })
      .catch(function (error) {
        cancel.disabled = false;
        connection("Could not cancel: " + error.message, "bad");
      });
  });
}

/* The elapsed time every second; the run (and the open turns' bars) every five while it is not final. */
function startTimers(view) {
  setInterval(function () {
    header.tick();
  }, 1000);
  setInterval(function () {
    if (!header.final) {
      view.refreshRun();
      if (view.renderer.openSegments.size) {
        view.redraw();
      }
    }
  }, 5000);
}

/* The run view's state and helpers for the browser tests: the one deliberate global. */
function exposeForTests(view) {
  window.orketRun = {
    renderer: view.renderer,
    charts: view.charts,
    /* Close the socket as a network drop would: the page reconnects by itself. */
    dropConnection: function () {
      return !!view.live && view.live.drop("dropped on purpose");
    },
    state: function () {
      return {
        lastSeq: view.renderer.lastSeq,
        knownLastSeq: view.state.knownLastSeq,
        connected: !!view.live && view.live.isOpen(),
        reconnects: view.live ? view.live.reconnects() : 0,
        done: view.state.done,
        final: header.final
      };
    }
  };
}

export function startLive() {
  approvals.runPage(config.run, config.canCancel);
  var view = createLiveView();
  wireCancel();
  startTimers(view);
  exposeForTests(view);
  connection("Connecting...", "");
  view.refreshRun();
  view.refreshTurns();
  connectLive(view);
}
