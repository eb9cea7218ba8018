/* Replay mode of the run view: the stored events of a run (or a run export file) played back at a
 * chosen speed, gaps between events capped, with the header computed from the frames themselves. */
import { Charts } from "./charts.js";
import { TURN_END, config } from "./config.js";
import { connection, header } from "./header.js";
import { Renderer } from "./transcript.js";
import { atMs, duration, fetchAllTurns, field, getJSON, setCardTitles, setText, throttle } from "./util.js";

var MAX_GAP_MS = 2000;
var controls = {
  speed: document.getElementById("replay-speed"),
  play: document.getElementById("replay-play"),
  pause: document.getElementById("replay-pause"),
  restart: document.getElementById("replay-restart"),
  file: document.getElementById("replay-file")
};
var source = { run: null, turns: [], frames: [], cardsTotal: 0 };
var play = { index: 0, timer: null, playing: false, total: 0 };
var charts = null;
var renderer = null;
var redraw = null; // charts redrawn at most every 300 ms while playing

function replayHeader() {
  var status = renderer.runStatus || "queued";
  var badge = field("status");
  badge.textContent = status;
  badge.dataset.status = status;
  var reason = renderer.runReason;
  setText("status_detail", status === "failed" ? "why: " + reason : status === "running" ? "" : reason);
  var tokensIn = 0;
  var tokensOut = 0;
  charts.turnRecords.forEach(function (turn) {
    if (renderer.endedTurns.has(turn.id)) {
      tokensIn += turn.tokens_in || 0;
      tokensOut += turn.tokens_out || 0;
    }
  });
  header.tokens(tokensIn, tokensOut, (source.run && source.run.token_budget) || 0);
  var elapsed = renderer.firstAt !== null ? (renderer.lastAt - renderer.firstAt) / 1000 : null;
  setText("elapsed", elapsed === null ? "-" : duration(elapsed));
  var done = 0;
  renderer.cardStatus.forEach(function (value) {
    if (value === "done") {
      done += 1;
    }
  });
  var total = source.cardsTotal;
  setText("cards", total ? done + " of " + total : String(done));
  setText("replay_progress", "Event " + renderer.lastSeq + " of " + (play.total ? source.frames[play.total - 1].seq : 0));
}

function stop() {
  if (play.timer !== null) {
    clearTimeout(play.timer);
    play.timer = null;
  }
  play.playing = false;
  controls.play.disabled = play.index >= play.total;
  controls.pause.disabled = true;
}

function finishIfDone() {
  if (play.index >= play.total) {
    stop();
    charts.draw(renderer, renderer.lastAt || Date.now());
    replayHeader();
    connection("Replay finished.", "done");
    return true;
  }
  return false;
}

function step() {
  play.timer = null;
  if (!play.playing) {
    return;
  }
  var speed = Number(controls.speed.value);
  if (speed === 0) {
    var until = Math.min(play.total, play.index + 400);
    while (play.index < until) {
      renderer.render(source.frames[play.index]);
      play.index += 1;
    }
    replayHeader();
    if (!finishIfDone()) {
      play.timer = setTimeout(step, 0);
    }
    return;
  }
  var frame = source.frames[play.index];
  renderer.render(frame);
  play.index += 1;
  replayHeader();
  if (finishIfDone()) {
    return;
  }
  var gap = (atMs(source.frames[play.index]) || 0) - (atMs(frame) || 0);
  var wait = Math.min(MAX_GAP_MS, Math.max(0, gap) / speed);
  play.timer = setTimeout(step, wait);
}

function start() {
  if (play.index >= play.total) {
    return;
  }
  play.playing = true;
  controls.play.disabled = true;
  controls.pause.disabled = false;
  connection("Playing.", "live");
  step();
}

function restart() {
  stop();
  renderer.reset();
  charts.turnRecords = new Map();
  charts.setTurns(source.turns);
  play.index = 0;
  play.total = source.frames.length;
  replayHeader();
  charts.draw(renderer, Date.now());
  controls.play.disabled = play.total === 0;
}

/* The frames to play: each seq once, in order; and the cards they name. */
function orderedFrames(frames) {
  var seen = new Set();
  var cards = new Set();
  var ordered = frames
    .filter(function (frame) {
      if (!frame || typeof frame.seq !== "number" || seen.has(frame.seq)) {
        return false;
      }
      seen.add(frame.seq);
      if (frame.card !== null && frame.card !== undefined) {
        cards.add(frame.card);
      }
      return true;
    })
    .sort(function (a, b) {
      return a.seq - b.seq;
    });
  return { frames: ordered, cards: cards };
}

/* The epic and model of the replayed run, where the run record names them. */
function showRunFacts(run) {
  var epic = run.epic_name || (run.epic && run.epic.name);
  if (epic) {
    setText("epic_name", epic);
  }
  var profile = run.model_profile;
  var model = run.model || (profile && (profile.provider === "scripted" ? "scripted" : profile.model));
  if (model) {
    setText("model", model);
  }
}

function load(run, turns, frames, label) {
  var sameRun = !run || run.id === undefined || run.id === config.run;
  setCardTitles(sameRun ? config.cards || {} : {});
  setText("run_id", "run " + (run && run.id !== undefined ? run.id : config.run));
  var ordered = orderedFrames(frames);
  source.run = run;
  source.turns = turns;
  source.frames = ordered.frames;
  source.cardsTotal = sameRun ? Object.keys(config.cards || {}).length : ordered.cards.size;
  if (run) {
    showRunFacts(run);
  }
  restart();
  connection(label + ": " + source.frames.length + " events. Press Play.", "");
}

/* Every stored event of the run, a thousand a page. */
function fetchStoredFrames() {
  var frames = [];
  function page(after) {
    return getJSON(config.api.events + "?after=" + after + "&limit=1000").then(function (data) {
      frames = frames.concat(data.events);
      var last = data.events.length ? data.events[data.events.length - 1].seq : after;
      if (data.events.length && last < data.last_seq) {
        return page(last);
      }
      return frames;
    });
  }
  return page(0);
}

function loadStored() {
  connection("Loading the stored run...", "");
  Promise.all([getJSON(config.api.run), fetchAllTurns(config.api.turns), fetchStoredFrames()])
    .then(function (results) {
      load(results[0], results[1], results[2], "Stored run " + config.run);
    })
    .catch(function (error) {
      connection("Could not load the run: " + error.message, "bad");
    });
}

/* A run export (JSON Lines): the run, its turns and its events; unreadable lines are counted. */
function parseExport(text) {
  var parsed = { run: null, turns: [], frames: [], problems: 0 };
  text.split(/\r?\n/).forEach(function (line) {
    if (!line.trim()) {
      return;
    }
    var item;
    try {
      item = JSON.parse(line);
    } catch (error) {
      parsed.problems += 1;
      return;
    }
    if (item.type === "run") {
      parsed.run = item.run || item;
    } else if (item.type === "turn") {
      parsed.turns.push(item.turn || item);
    } else if (item.type === "event") {
      parsed.frames.push(item.event || item.frame);
    }
  });
  return parsed;
}

function loadFile(file) {
  stop();
  connection("Reading " + file.name + "...", "");
  file.text().then(function (text) {
    var parsed = parseExport(text);
    if (!parsed.frames.length) {
      connection(file.name + " holds no events; is it a run export (JSON Lines)?", "bad");
      return;
    }
    load(parsed.run, parsed.turns, parsed.frames, file.name + (parsed.problems ? " (" + parsed.problems + " unreadable lines skipped)" : ""));
  });
}

function wireControls() {
  controls.play.addEventListener("click", start);
  controls.pause.addEventListener("click", function () {
    stop();
    connection("Paused at event " + renderer.lastSeq + ".", "");
  });
  controls.restart.addEventListener("click", function () {
    restart();
    start();
  });
  controls.file.addEventListener("change", function () {
    if (controls.file.files && controls.file.files[0]) {
      loadFile(controls.file.files[0]);
    }
  });
}

/* The replay's state and controls for the browser tests: the one deliberate global. */
function exposeForTests() {
  window.orketRun = {
    renderer: renderer,
    charts: charts,
    play: start,
    state: function () {
      return { lastSeq: renderer.lastSeq, index: play.index, total: play.total, playing: play.playing };
    }
  };
}

export function startReplay() {
  charts = new Charts();
  redraw = throttle(function () {
    charts.draw(renderer, renderer.lastAt || Date.now());
  }, 300);
  renderer = new Renderer({
    onFrame: function (frame) {
      if (frame.kind === "turn.started" || TURN_END[frame.kind] || frame.kind === "tool.refused") {
        redraw();
      }
    }
  });
  wireControls();
  exposeForTests();
  loadStored();
}
