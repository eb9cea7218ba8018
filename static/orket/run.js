/* Orket run view and replay: renders run event frames (live from the WebSocket, or played back from
 * the events API or an export file) into the transcript, the header and the charts.
 *
 * Every frame is rendered once, keyed by its seq: frames at or below the last rendered seq are
 * ignored, so a reconnect that resumes from the last seq can neither duplicate nor skip a line.
 * A turn shows its steps as they happen (run_steps.js builds them). All model output is inserted
 * with textContent, never as HTML. An ES module: dom.js and Chart.js are classic scripts before it.
 */
import * as approvals from "./approvals.js";
import { cookie, el } from "./dom.js";
import * as steps from "./run_steps.js";
import { diffFold } from "./call_diff.js";
import { commandOutputFold } from "./command_log.js";

(function () {
  "use strict";

  var configNode = document.getElementById("run-config");
  if (!configNode) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var FINAL = { succeeded: true, failed: true, canceled: true };
  var TURN_END = { "turn.succeeded": true, "turn.failed": true, "turn.canceled": true, "turn.requeued": true, "turn.waiting": true };
  var LONG_LINES = 14;
  var PALETTE = ["#2f5bd3", "#c2410c", "#0f766e", "#7c3aed", "#b45309", "#be185d", "#15803d", "#0369a1", "#4d7c0f", "#9f1239"];

  /* ---------- small helpers ---------- */


  function seatColor(seat) {
    var text = String(seat || "");
    var hash = 0;
    for (var i = 0; i < text.length; i++) {
      hash = (hash * 31 + text.charCodeAt(i)) >>> 0;
    }
    return PALETTE[hash % PALETTE.length];
  }

  function atMs(frame) {
    var value = Date.parse(frame && frame.at);
    return isNaN(value) ? null : value;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) {
      return "-";
    }
    var whole = Math.max(0, Math.floor(seconds));
    var h = Math.floor(whole / 3600);
    var m = Math.floor((whole % 3600) / 60);
    var s = whole % 60;
    if (h) {
      return h + "h " + String(m).padStart(2, "0") + "m " + String(s).padStart(2, "0") + "s";
    }
    if (m) {
      return m + "m " + String(s).padStart(2, "0") + "s";
    }
    return s + "s";
  }

  function pretty(value) {
    if (value === undefined) {
      return "";
    }
    if (typeof value === "string") {
      return value;
    }
    try {
      return JSON.stringify(value, null, 2);
    } catch (error) {
      return String(value);
    }
  }

  function number(value) {
    return Number(value || 0).toLocaleString("en-US");
  }

  function field(name) {
    return document.querySelector('[data-field="' + name + '"]');
  }

  function setText(name, text) {
    var node = field(name);
    if (node) {
      node.textContent = text;
    }
  }

  function throttle(fn, wait) {
    var timer = null;
    var last = 0;
    return function () {
      if (timer !== null) {
        return;
      }
      var delay = Math.max(0, wait - (Date.now() - last));
      timer = setTimeout(function () {
        timer = null;
        last = Date.now();
        fn();
      }, delay);
    };
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (response) {
      if (!response.ok) {
        throw new Error(url + " answered " + response.status);
      }
      return response.json();
    });
  }

  function fetchAllTurns(url) {
    var turns = [];
    function page(address) {
      return getJSON(address).then(function (data) {
        var results = Array.isArray(data) ? data : data.results || [];
        turns = turns.concat(results);
        if (data && data.next) {
          return page(data.next);
        }
        return turns;
      });
    }
    return page(url + "?page_size=500");
  }

  var cardTitles = config.cards || {};

  function cardTitle(cardId) {
    var title = cardTitles[String(cardId)];
    return title ? "#" + cardId + " " + title : "Card #" + cardId;
  }

  /* ---------- the transcript renderer ---------- */

  function Renderer(options) {
    this.root = document.getElementById("transcript");
    this.runLines = document.getElementById("run-lines");
    this.log = document.getElementById("frame-log");
    this.empty = document.getElementById("transcript-empty");
    this.onFrame = options.onFrame;
    this.reset();
  }

  Renderer.prototype.reset = function () {
    this.lastSeq = 0;
    this.cards = new Map();
    this.turns = new Map();
    this.segments = [];
    this.openSegments = new Map();
    this.refusals = [];
    this.endedTurns = new Set();
    this.cardStatus = new Map();
    this.runStatus = null;
    this.runReason = "";
    this.firstAt = null;
    this.lastAt = null;
    this.root.replaceChildren();
    this.runLines.replaceChildren();
    this.log.replaceChildren();
    if (this.empty) {
      this.empty.hidden = false;
    }
  };

  /* Render one frame; false when it was already rendered (seq at or below the last one). */
  Renderer.prototype.render = function (frame) {
    if (!frame || typeof frame.seq !== "number" || frame.seq <= this.lastSeq) {
      return false;
    }
    this.lastSeq = frame.seq;
    var at = atMs(frame);
    if (at !== null) {
      if (this.firstAt === null) {
        this.firstAt = at;
      }
      this.lastAt = at;
    }
    if (this.empty) {
      this.empty.hidden = true;
    }
    var entry = el("li", null, frame.kind === "text" || frame.kind === "reasoning" ? frame.text || "" : frame.kind);
    entry.dataset.seq = frame.seq;
    entry.dataset.kind = frame.kind;
    this.log.appendChild(entry);
    this.track(frame, at);
    this.draw(frame);
    if (this.onFrame) {
      this.onFrame(frame);
    }
    return true;
  };

  /* Facts the charts and the replay header need, gathered from the frames themselves. */
  Renderer.prototype.track = function (frame, at) {
    var kind = frame.kind;
    if (kind === "run.status") {
      this.runStatus = frame.status;
      this.runReason = frame.reason || "";
    }
    if (kind === "card.status" && frame.card !== null) {
      this.cardStatus.set(frame.card, frame.status);
    }
    if (kind === "card.blocked" && frame.card !== null) {
      this.cardStatus.set(frame.card, "blocked");
    }
    if (frame.turn !== null && frame.turn !== undefined) {
      var info = this.turnInfo(frame);
      if (kind === "turn.started") {
        var segment = { turn: frame.turn, card: frame.card, seat: info.seat, start: at, end: null, status: "running" };
        this.segments.push(segment);
        this.openSegments.set(frame.turn, segment);
      }
      if (TURN_END[kind]) {
        var open = this.openSegments.get(frame.turn);
        if (open) {
          open.end = at;
          open.status = kind.slice(5);
          this.openSegments.delete(frame.turn);
        }
        if (kind !== "turn.requeued") {
          this.endedTurns.add(frame.turn);
        }
      }
    }
    if (kind === "tool.refused") {
      this.refusals.push({ card: frame.card, at: at, seat: frame.turn ? this.turnInfo(frame).seat : "" });
    }
  };

  Renderer.prototype.turnInfo = function (frame) {
    var info = this.turns.get(frame.turn);
    if (!info) {
      info = {
        id: frame.turn,
        card: frame.card,
        seat: frame.seat || "",
        role: frame.role || "",
        purpose: frame.purpose || "",
        model: "",
        node: null,
        steps: new Map(),
        step: null
      };
      this.turns.set(frame.turn, info);
    }
    if (frame.purpose) {
      info.purpose = frame.purpose;
    }
    if (frame.seat) {
      info.seat = frame.seat;
    }
    if (frame.role) {
      info.role = frame.role;
    }
    if (frame.model) {
      info.model = frame.model;
    }
    return info;
  };

  Renderer.prototype.cardSection = function (cardId) {
    var key = cardId === null || cardId === undefined ? "none" : String(cardId);
    var section = this.cards.get(key);
    if (section) {
      return section;
    }
    var node = el("section", "card-section");
    node.dataset.card = key;
    var head = el("header", "card-section-head");
    head.appendChild(el("h3", null, key === "none" ? "Without a card" : cardTitle(cardId)));
    var badge = el("span", "status-badge", "");
    badge.hidden = true;
    head.appendChild(badge);
    node.appendChild(head);
    var body = el("div", "card-section-body");
    node.appendChild(body);
    this.root.appendChild(node);
    section = { node: node, body: body, badge: badge };
    this.cards.set(key, section);
    return section;
  };

  Renderer.prototype.turnBlock = function (frame) {
    var info = this.turnInfo(frame);
    if (info.node) {
      return info;
    }
    var section = this.cardSection(frame.card);
    var block = el("article", "turn");
    block.dataset.turn = frame.turn;
    var head = el("header", "turn-head");
    info.seatNode = el("span", "seat", info.seat || "seat");
    head.appendChild(info.seatNode);
    info.roleNode = el("span", "role", info.role);
    head.appendChild(info.roleNode);
    info.purposeNode = el("span", "purpose", "");
    head.appendChild(info.purposeNode);
    info.resumedNode = el("span", "resumed-badge", "resumed");
    info.resumedNode.hidden = true;
    head.appendChild(info.resumedNode);
    info.modelNode = el("span", "turn-model", "");
    head.appendChild(info.modelNode);
    head.appendChild(el("span", "turn-id", "turn " + frame.turn));
    info.statusNode = el("span", "status-badge", "queued");
    info.statusNode.dataset.status = "queued";
    head.appendChild(info.statusNode);
    block.appendChild(head);
    info.body = el("div", "turn-body");
    block.appendChild(info.body);
    section.body.appendChild(block);
    info.node = block;
    info.text = null;
    info.reasoning = null;
    this.paintSeat(info);
    return info;
  };

  Renderer.prototype.paintSeat = function (info) {
    if (!info || !info.node) {
      return;
    }
    info.node.style.setProperty("--seat-color", seatColor(info.seat));
    info.node.dataset.seat = info.seat;
    info.seatNode.textContent = info.seat || "seat";
    info.roleNode.textContent = info.role;
    info.purposeNode.textContent = info.purpose ? "for " + info.purpose : "";
    info.purposeNode.dataset.purpose = info.purpose;
  };

  /* The block of step `number` of a turn, made when first needed (a step's tool events name it). */
  Renderer.prototype.stepOf = function (info, number) {
    var step = info.steps.get(number);
    if (!step) {
      step = steps.stepBlock(number);
      info.body.appendChild(step.node);
      info.steps.set(number, step);
    }
    return step;
  };

  /* Where a turn's frame goes: into the step it names, else into the step still answering, else
   * into the turn itself. Turn events always go to the turn. */
  Renderer.prototype.turnParent = function (info, frame) {
    if (frame.kind.indexOf("turn.") === 0) {
      return info.body;
    }
    if (typeof frame.step === "number") {
      return this.stepOf(info, frame.step).body;
    }
    return info.step ? info.step.body : info.body;
  };

  Renderer.prototype.stepStarted = function (info, frame) {
    var step = this.stepOf(info, frame.step);
    if (step.announced) {
      /* The same step asked again: an earlier attempt was cut off before its answer was on record. */
      this.line(step.body, frame, "turn-event", "Step " + frame.step + " asked again (" + steps.requestFacts(frame) + ")");
    } else {
      step.start.dataset.seq = frame.seq;
      step.start.dataset.kind = frame.kind;
      step.request.textContent = steps.requestFacts(frame);
      step.announced = true;
    }
    step.node.classList.remove("step-cut");
    step.node.classList.add("step-open");
    info.step = step;
  };

  Renderer.prototype.stepFinished = function (info, frame) {
    var step = this.stepOf(info, frame.step);
    step.end.textContent = steps.finishedFacts(frame);
    step.end.dataset.seq = frame.seq;
    step.end.dataset.kind = frame.kind;
    step.node.dataset.outcome = frame.outcome || "";
    if (frame.refused) {
      step.node.classList.add("step-refused");
      step.end.appendChild(document.createTextNode(" "));
      step.end.appendChild(el("span", "refusal-label refusal-count", frame.refused + " refused"));
    }
    step.node.classList.remove("step-open", "step-cut");
    step.finished = true;
    if (info.step === step) {
      info.step = null;
    }
  };

  /* When the turn ends, a step still open (its attempt was cut off and not resumed) says so. */
  Renderer.prototype.endSteps = function (info) {
    info.steps.forEach(function (step) {
      if (!step.finished) {
        step.end.textContent = "ended before the step finished";
        step.node.classList.remove("step-open");
        step.node.classList.add("step-cut");
      }
    });
    info.step = null;
  };

  /* A call's outcome goes with the call it answers (the step's last call of that name). */
  Renderer.prototype.callGroup = function (info, frame, parent) {
    var step = typeof frame.step === "number" ? this.stepOf(info, frame.step) : info.step;
    var group = step && step.lastCall;
    if (group && !group.dataset.settled && group.dataset.name === String(frame.name || "")) {
      group.dataset.settled = frame.kind;
      return group;
    }
    return parent;
  };

  Renderer.prototype.line = function (parent, frame, className, label) {
    var node = el("div", "line " + (className || ""));
    node.dataset.seq = frame.seq;
    node.dataset.kind = frame.kind;
    var labelNode = el("span", "line-label", label);
    node.appendChild(labelNode);
    parent.appendChild(node);
    return node;
  };

  Renderer.prototype.detail = function (node, name, value, preformatted) {
    if (value === undefined || value === null || value === "") {
      return;
    }
    var row = el("div", "detail");
    row.appendChild(el("span", "detail-name", name));
    var text = preformatted ? pretty(value) : String(value);
    var valueNode = el(preformatted ? "pre" : "span", "detail-value", text);
    var lines = preformatted ? text.split("\n").length : 0;
    if (lines > LONG_LINES) {
      var fold = el("details", "long");
      fold.appendChild(el("summary", null, lines + " lines"));
      fold.appendChild(valueNode);
      row.appendChild(fold);
    } else {
      row.appendChild(valueNode);
    }
    node.appendChild(row);
  };

  Renderer.prototype.draw = function (frame) {
    var kind = frame.kind;
    var parent;
    var info = null;
    if (frame.turn !== null && frame.turn !== undefined) {
      info = this.turnBlock(frame);
      parent = this.turnParent(info, frame);
      if (kind !== "text") {
        info.text = null;
      }
      if (kind !== "reasoning") {
        info.reasoning = null;
      }
    } else if (frame.card !== null && frame.card !== undefined) {
      parent = this.cardSection(frame.card).body;
    } else {
      parent = this.runLines;
    }
    var node;
    switch (kind) {
      case "text":
      case "reasoning": {
        var holder = kind === "text" ? info && info.text : info && info.reasoning;
        if (!holder) {
          holder = el("pre", kind === "text" ? "model-text" : "model-reasoning");
          if (kind === "reasoning") {
            holder.title = "Reasoning";
          }
          parent.appendChild(holder);
          if (info) {
            info[kind] = holder;
          }
        }
        var chunk = el("span", "chunk", frame.text || "");
        chunk.dataset.seq = frame.seq;
        chunk.dataset.kind = kind;
        holder.appendChild(chunk);
        return;
      }
      case "run.status":
        node = this.line(parent, frame, "run-status status-" + frame.status, "Run " + frame.status);
        this.detail(node, "reason", frame.reason);
        return;
      case "run.cancel_requested":
        this.line(parent, frame, "warn", "Cancel requested");
        return;
      case "turn.queued":
        this.paintSeat(info);
        node = this.line(parent, frame, "turn-event", "Queued for seat " + (frame.seat || "") + " as " + (frame.role || ""));
        return;
      case "turn.started":
        this.paintSeat(info);
        if (info) {
          info.modelNode.textContent = frame.provider === "scripted" ? "scripted" : frame.model || "";
          info.step = null;
        }
        this.setTurnStatus(info, "running");
        node = this.line(parent, frame, "turn-event", "Started" + (frame.attempt > 1 ? " (attempt " + frame.attempt + ")" : ""));
        this.detail(node, "model", frame.model ? frame.model + (frame.provider ? " via " + frame.provider : "") : "");
        return;
      case "step.started":
      case "step.finished":
        if (info) {
          (kind === "step.started" ? this.stepStarted : this.stepFinished).call(this, info, frame);
          return;
        }
        node = this.line(parent, frame, "other", kind);
        this.extra(node, frame);
        return;
      case "turn.resumed":
        if (info) {
          info.resumedNode.hidden = false;
        }
        node = this.line(parent, frame, "turn-event resumed", "Resumed: " + (frame.steps_done || 0) + " earlier step(s) on record, not asked again");
        this.detail(node, "why", frame.reason);
        return;
      case "model.schema_shape":
        this.line(parent, frame, "note schema-shape", steps.schemaShapeText(frame));
        return;
      case "tool.call": {
        var group = parent;
        if (info) {
          group = el("div", "call-group");
          group.dataset.name = String(frame.name || "");
          parent.appendChild(group);
          var owner = typeof frame.step === "number" ? this.stepOf(info, frame.step) : info.step;
          if (owner) {
            owner.lastCall = group;
          }
        }
        node = this.line(group, frame, "tool-call", "Tool call: " + (frame.name || "?"));
        this.detail(node, "arguments", steps.readable(frame.arguments), true);
        return;
      }
      case "command.started":
        parent = info ? this.callGroup(info, frame, parent) : parent;
        commandOutputFold(parent, frame, config.mode !== "replay");
        return;
      case "tool.result":
        parent = info ? this.callGroup(info, frame, parent) : parent;
        parent.appendChild(steps.resultFold(frame));
        diffFold(parent, frame, config.project);
        commandOutputFold(parent, frame, false);
        return;
      case "tool.refused":
        parent = info ? this.callGroup(info, frame, parent) : parent;
        if (parent.classList.contains("call-group")) {
          parent.classList.add("call-refused");
        }
        if (parent.closest("section.step")) {
          parent.closest("section.step").classList.add("step-refused");
        }
        node = this.line(parent, frame, "refused", "Refused: " + (frame.name || "?"));
        node.insertBefore(steps.refusalLabel(frame.rule), node.firstChild);
        this.detail(node, "rule", frame.rule);
        this.detail(node, "message", frame.message);
        this.detail(node, "fix", frame.fix);
        return;
      case "approval.requested":
      case "approval.decided":
      case "tool.rejected":
        parent = info ? this.callGroup(info, frame, parent) : parent;
        steps.approvalLine(this, parent, frame);
        return;
      case "tool.error":
        parent = info ? this.callGroup(info, frame, parent) : parent;
        node = this.line(parent, frame, "error", "Tool error: " + (frame.name || "?"));
        this.detail(node, "rule", frame.rule);
        this.detail(node, "message", frame.message);
        commandOutputFold(parent, frame, false);
        return;
      case "card.status":
        node = this.line(parent, frame, "card-status", "Card is now " + frame.status);
        this.detail(node, "by seat", frame.seat);
        this.setCardStatus(frame.card, frame.status);
        return;
      case "card.blocked":
        node = this.line(this.cardSection(frame.card).body, frame, "blocked", "Card blocked" + (frame.wait_reason ? " (" + frame.wait_reason + ")" : ""));
        this.detail(node, "report", frame.report, true);
        this.setCardStatus(frame.card, "blocked");
        return;
      case "model.retry":
        node = this.line(parent, frame, "warn", "Model call retried (attempt " + frame.attempt + ")");
        this.detail(node, "error", frame.error);
        this.detail(node, "waited", frame.delay_seconds !== undefined ? frame.delay_seconds + " s" : "");
        return;
      case "parse.problem":
        node = this.line(parent, frame, "warn", "Could not read the answer");
        this.detail(node, "problem", frame.message);
        return;
      case "workspace.commit":
        node = this.line(parent, frame, "commit", "Committed " + String(frame.sha || "").slice(0, 12));
        this.detail(node, "files", Array.isArray(frame.files) ? frame.files.join("\n") : frame.files, true);
        return;
      case "epic.status":
        this.line(parent, frame, "card-status", "Epic is now " + frame.status);
        return;
      case "workspace.merged":
        node = this.line(parent, frame, "commit", "Merged into the main branch");
        this.extra(node, frame);
        return;
      case "workspace.merge_failed":
        node = this.line(parent, frame, "error", "Merge failed");
        this.extra(node, frame);
        return;
      default:
        if (TURN_END[kind]) {
          if (info && (kind === "turn.requeued" || kind === "turn.waiting")) {
            info.step = null; /* its steps go on when the turn is taken up again */
          } else if (info) {
            this.endSteps(info);
          }
          var status = kind.slice(5);
          node = this.line(parent, frame, "turn-end turn-" + status, "Turn " + status);
          this.detail(node, status === "succeeded" ? "outcome" : "reason", frame.outcome || frame.reason);
          this.setTurnStatus(info, status);
          return;
        }
        node = this.line(parent, frame, "other", kind);
        this.extra(node, frame);
    }
  };

  Renderer.prototype.extra = function (node, frame) {
    var rest = {};
    var any = false;
    Object.keys(frame).forEach(function (key) {
      if (["seq", "kind", "turn", "card", "at"].indexOf(key) === -1) {
        rest[key] = frame[key];
        any = true;
      }
    });
    if (any) {
      this.detail(node, "details", rest, true);
    }
  };

  Renderer.prototype.setTurnStatus = function (info, status) {
    if (info && info.statusNode) {
      info.statusNode.textContent = status;
      info.statusNode.dataset.status = status;
    }
  };

  Renderer.prototype.setCardStatus = function (cardId, status) {
    var section = this.cardSection(cardId);
    section.badge.hidden = false;
    section.badge.textContent = status;
    section.badge.dataset.status = status;
  };

  /* ---------- charts ---------- */

  function Charts() {
    this.turnRecords = new Map();
    this.available = typeof window.Chart === "function";
    this.timeline = null;
    this.bySeat = null;
    this.byModel = null;
  }

  Charts.prototype.setTurns = function (turns) {
    var self = this;
    turns.forEach(function (turn) {
      self.turnRecords.set(turn.id, turn);
    });
  };

  Charts.prototype.reset = function () {
    this.turnRecords = new Map();
  };

  Charts.prototype.make = function (id, options) {
    var canvas = document.getElementById(id);
    if (!canvas || !this.available) {
      return null;
    }
    return new window.Chart(canvas, options);
  };

  Charts.prototype.draw = function (renderer, nowMs) {
    if (!this.available) {
      return;
    }
    this.drawTimeline(renderer, nowMs);
    this.drawGroups(renderer);
  };

  Charts.prototype.drawTimeline = function (renderer, nowMs) {
    var origin = renderer.firstAt;
    var rows = [];
    var datasets = new Map();
    function row(card) {
      var label = card === null || card === undefined ? "Without a card" : cardTitle(card);
      if (rows.indexOf(label) === -1) {
        rows.push(label);
      }
      return label;
    }
    renderer.segments.forEach(function (segment) {
      if (segment.start === null || origin === null) {
        return;
      }
      var end = segment.end !== null ? segment.end : nowMs;
      var seat = segment.seat || "seat";
      if (!datasets.has(seat)) {
        var colour = seatColor(seat);
        datasets.set(seat, {
          type: "bar",
          label: seat,
          data: [],
          backgroundColor: colour,
          borderColor: colour,
          borderWidth: 1,
          borderSkipped: false,
          grouped: false,
          barPercentage: 0.7,
          categoryPercentage: 0.9
        });
      }
      datasets.get(seat).data.push({
        y: row(segment.card),
        x: [(segment.start - origin) / 1000, Math.max(segment.start + 150, end) / 1000 - origin / 1000],
        status: segment.status
      });
    });
    var refusals = {
      type: "scatter",
      label: "refusal",
      data: [],
      pointStyle: "rectRot",
      pointRadius: 7,
      pointHoverRadius: 9,
      borderWidth: 3,
      borderColor: "#b42318",
      backgroundColor: "#ffffff",
      order: -1
    };
    renderer.refusals.forEach(function (refusal) {
      if (refusal.at !== null && origin !== null) {
        refusals.data.push({ x: (refusal.at - origin) / 1000, y: row(refusal.card) });
      }
    });
    var all = Array.from(datasets.values());
    all.push(refusals);
    var holder = document.querySelector(".timeline-holder");
    if (holder) {
      holder.style.height = Math.max(140, 60 + rows.length * 34) + "px";
    }
    if (!this.timeline) {
      this.timeline = this.make("chart-timeline", {
        type: "bar",
        data: { labels: rows, datasets: all },
        options: {
          indexAxis: "y",
          animation: false,
          maintainAspectRatio: false,
          parsing: { xAxisKey: "x", yAxisKey: "y" },
          scales: {
            x: { type: "linear", min: 0, title: { display: true, text: "seconds since the run started" } },
            y: { type: "category", labels: rows, ticks: { autoSkip: false } }
          },
          plugins: {
            legend: {
              position: "bottom",
              labels: {
                boxWidth: 12,
                sort: function (a, b) {
                  return (a.text === "refusal" ? 1 : 0) - (b.text === "refusal" ? 1 : 0);
                },
                filter: function (item, data) {
                  var dataset = data.datasets[item.datasetIndex];
                  return !(dataset.type === "scatter" && dataset.data.length === 0);
                }
              }
            },
            tooltip: {
              callbacks: {
                label: function (context) {
                  var raw = context.raw || {};
                  if (Array.isArray(raw.x)) {
                    return context.dataset.label + ": " + raw.x[0].toFixed(1) + "s to " + raw.x[1].toFixed(1) + "s (" + raw.status + ")";
                  }
                  return "refusal at " + Number(raw.x).toFixed(1) + "s";
                }
              }
            }
          }
        }
      });
      return;
    }
    this.timeline.data.labels = rows;
    this.timeline.options.scales.y.labels = rows;
    this.timeline.data.datasets = all;
    this.timeline.update("none");
  };

  Charts.prototype.drawGroups = function (renderer) {
    var bySeat = new Map();
    var byModel = new Map();
    function add(map, key, turn) {
      var item = map.get(key) || { tokensIn: 0, tokensOut: 0, seconds: 0 };
      item.tokensIn += turn.tokens_in || 0;
      item.tokensOut += turn.tokens_out || 0;
      item.seconds += (turn.duration_ms || 0) / 1000;
      map.set(key, item);
    }
    this.turnRecords.forEach(function (turn) {
      if (!renderer.endedTurns.has(turn.id)) {
        return;
      }
      add(bySeat, turn.seat || "seat", turn);
      add(byModel, turn.provider === "scripted" ? "scripted" : turn.model || "?", turn);
    });
    this.bySeat = this.drawGroup(this.bySeat, "chart-seat", bySeat, true);
    this.byModel = this.drawGroup(this.byModel, "chart-model", byModel, false);
  };

  Charts.prototype.drawGroup = function (chart, id, groups, colourBySeat) {
    var labels = Array.from(groups.keys());
    var values = Array.from(groups.values());
    var seatColours = labels.map(function (label) {
      return colourBySeat ? seatColor(label) : "#2f5bd3";
    });
    var datasets = [
      {
        label: "tokens in",
        data: values.map(function (v) { return v.tokensIn; }),
        backgroundColor: seatColours.map(function (c) { return c + "66"; }),
        borderColor: seatColours,
        borderWidth: 1,
        stack: "tokens",
        yAxisID: "y"
      },
      {
        label: "tokens out",
        data: values.map(function (v) { return v.tokensOut; }),
        backgroundColor: seatColours,
        stack: "tokens",
        yAxisID: "y"
      },
      {
        label: "seconds",
        data: values.map(function (v) { return Math.round(v.seconds * 10) / 10; }),
        backgroundColor: "#5b6477",
        stack: "time",
        yAxisID: "seconds"
      }
    ];
    if (!chart) {
      return this.make(id, {
        type: "bar",
        data: { labels: labels, datasets: datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: {
            y: { beginAtZero: true, stacked: true, title: { display: true, text: "tokens" } },
            seconds: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "seconds" } },
            x: { stacked: true }
          },
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } }
        }
      });
    }
    chart.data.labels = labels;
    chart.data.datasets = datasets;
    chart.update("none");
    return chart;
  };

  /* ---------- header ---------- */

  var header = {
    durationBase: null,
    durationAt: 0,
    final: !!config.final,
    startedAt: null,
    showRun: function (run) {
      var status = run.status;
      var badge = field("status");
      badge.textContent = status;
      badge.dataset.status = status;
      this.final = !!FINAL[status];
      var detail = "";
      if (status === "queued") {
        detail = "waiting for a worker to start it";
      } else if (status === "running") {
        var workers = [];
        var waiting = 0;
        (run.active_turns || []).forEach(function (turn) {
          if (turn.status === "running" && turn.worker && workers.indexOf(turn.worker) === -1) {
            workers.push(turn.worker);
          } else if (turn.status === "queued") {
            waiting += 1;
          }
        });
        if (workers.length) {
          detail = "on " + workers.join(", ");
        } else if (waiting) {
          detail = waiting + " turn(s) waiting for a worker";
        } else {
          detail = "between turns";
        }
        if (run.cancel_requested) {
          detail += "; cancel requested";
        }
      } else if (run.status_reason) {
        detail = (status === "failed" ? "why: " : "") + run.status_reason;
      }
      setText("status_detail", detail);
      if (run.model) {
        setText("model", run.model);
      }
      this.tokens(run.tokens_in, run.tokens_out, run.token_budget);
      if (run.cards_total !== undefined) {
        setText("cards", run.cards_done + " of " + run.cards_total);
      }
      this.durationBase = run.duration_seconds;
      this.durationAt = Date.now();
      this.tick();
      var cancel = document.getElementById("run-cancel");
      if (cancel) {
        cancel.disabled = this.final || !!run.cancel_requested;
        cancel.textContent = run.cancel_requested && !this.final ? "Cancel requested" : "Cancel run";
      }
    },
    tokens: function (tokensIn, tokensOut, budget) {
      setText("tokens", "in " + number(tokensIn) + " / out " + number(tokensOut) + " of " + number(budget));
      var meter = field("meter");
      if (meter && budget) {
        var pctIn = Math.min(100, (100 * (tokensIn || 0)) / budget);
        var pctOut = Math.min(100 - pctIn, (100 * (tokensOut || 0)) / budget);
        meter.querySelector(".meter-in").style.width = pctIn + "%";
        meter.querySelector(".meter-out").style.width = pctOut + "%";
        meter.setAttribute("aria-valuenow", String((tokensIn || 0) + (tokensOut || 0)));
        meter.setAttribute("aria-valuemax", String(budget));
      }
    },
    tick: function () {
      if (this.durationBase === null || this.durationBase === undefined) {
        setText("elapsed", "not started");
        return;
      }
      var extra = this.final ? 0 : (Date.now() - this.durationAt) / 1000;
      setText("elapsed", duration(this.durationBase + extra));
    }
  };

  function connection(text, kind) {
    var node = field("connection");
    if (node) {
      node.textContent = text;
      node.dataset.state = kind || "";
    }
  }

  /* ---------- live mode ---------- */

  function startLive() {
    approvals.runPage(config.run, config.canCancel);
    var charts = new Charts();
    var state = { socket: null, backoff: 500, timer: null, done: false, closing: false, knownLastSeq: null, reconnects: 0, stopped: false };
    var redraw = throttle(function () {
      charts.draw(renderer, Date.now());
    }, 500);
    var refreshTurns = throttle(function () {
      fetchAllTurns(config.api.turns)
        .then(function (turns) {
          charts.setTurns(turns);
          redraw();
        })
        .catch(function () {});
    }, 1500);
    var refreshRun = throttle(function () {
      getJSON(config.api.run)
        .then(function (run) {
          header.showRun(run);
          state.knownLastSeq = run.last_seq;
          maybeFinish();
        })
        .catch(function (error) {
          connection("Could not refresh the run: " + error.message, "bad");
        });
    }, 750);

    var renderer = new Renderer({
      onFrame: function (frame) {
        var kind = frame.kind;
        if (kind === "run.status" || kind === "run.cancel_requested" || kind.indexOf("turn.") === 0 || kind === "card.status") {
          refreshRun();
        }
        if (TURN_END[kind]) {
          refreshTurns();
        }
        if (kind.indexOf("approval.") === 0) {
          approvals.runPage(config.run, config.canCancel);
        }
        if (kind === "turn.started" || TURN_END[kind] || kind === "tool.refused") {
          redraw();
        }
      }
    });

    function caughtUp() {
      return header.final && state.knownLastSeq !== null && renderer.lastSeq >= state.knownLastSeq;
    }

    /* A final run whose every event is shown: check once more a little later (the engine may still
     * write an event or two after the final status), then let the socket go. */
    function maybeFinish() {
      if (!caughtUp() || state.done || state.closing) {
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
            if (caughtUp()) {
              finish();
            }
          });
      }, 1500);
    }

    function finish() {
      if (!state.done) {
        state.done = true;
        connection("The run is finished; every event is shown.", "done");
        if (state.socket) {
          var socket = state.socket;
          state.socket = null;
          socket.close(1000, "run finished");
        }
        refreshTurns();
        redraw();
      }
    }

    function connect() {
      state.timer = null;
      if (state.done || state.stopped) {
        return;
      }
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + location.host + config.ws + "?after=" + renderer.lastSeq);
      state.socket = socket;
      socket.onopen = function () {
        state.backoff = 500;
        connection(state.reconnects ? "Live (reconnected; resumed after event " + renderer.lastSeq + ")." : "Live.", "live");
      };
      socket.onmessage = function (message) {
        var frame;
        try {
          frame = JSON.parse(message.data);
        } catch (error) {
          return;
        }
        renderer.render(frame);
        maybeFinish();
      };
      socket.onclose = function (event) {
        if (state.socket !== socket) {
          return;
        }
        state.socket = null;
        if (event.code === 4401) {
          connection("Your session has ended; log in again to keep watching.", "bad");
          return;
        }
        if (event.code === 4404 || event.code === 4403) {
          connection("This run is not visible to you.", "bad");
          return;
        }
        if (state.done) {
          return;
        }
        var wait = state.backoff + Math.floor(Math.random() * 250);
        state.backoff = Math.min(10000, state.backoff * 2);
        state.reconnects += 1;
        connection("Connection lost; reconnecting in " + Math.ceil(wait / 1000) + " s.", "warn");
        state.timer = setTimeout(connect, wait);
        refreshRun();
      };
    }

    var cancel = document.getElementById("run-cancel");
    if (cancel) {
      cancel.addEventListener("click", function () {
        if (!window.confirm("Cancel this run?")) {
          return;
        }
        cancel.disabled = true;
        fetch(config.api.cancel, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": cookie("csrftoken"), Accept: "application/json" }
        })
          .then(function (response) {
            if (!response.ok) {
              throw new Error("the server answered " + response.status);
            }
            return response.json();
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

    setInterval(function () {
      header.tick();
    }, 1000);
    setInterval(function () {
      if (!header.final) {
        refreshRun();
        if (renderer.openSegments.size) {
          redraw();
        }
      }
    }, 5000);

    window.orketRun = {
      renderer: renderer,
      charts: charts,
      /* Close the socket as a network drop would: the page reconnects by itself. */
      dropConnection: function () {
        if (state.socket) {
          state.socket.close(4000, "dropped on purpose");
          return true;
        }
        return false;
      },
      state: function () {
        return {
          lastSeq: renderer.lastSeq,
          knownLastSeq: state.knownLastSeq,
          connected: !!(state.socket && state.socket.readyState === WebSocket.OPEN),
          reconnects: state.reconnects,
          done: state.done,
          final: header.final
        };
      }
    };

    connection("Connecting...", "");
    refreshRun();
    refreshTurns();
    connect();
  }

  /* ---------- replay mode ---------- */

  function startReplay() {
    var charts = new Charts();
    var source = { run: null, turns: [], frames: [], cardsTotal: 0 };
    var play = { index: 0, timer: null, playing: false, total: 0 };
    var speedSelect = document.getElementById("replay-speed");
    var playButton = document.getElementById("replay-play");
    var pauseButton = document.getElementById("replay-pause");
    var restartButton = document.getElementById("replay-restart");
    var fileInput = document.getElementById("replay-file");
    var MAX_GAP_MS = 2000;

    var redraw = throttle(function () {
      charts.draw(renderer, renderer.lastAt || Date.now());
    }, 300);

    var renderer = new Renderer({
      onFrame: function (frame) {
        if (frame.kind === "turn.started" || TURN_END[frame.kind] || frame.kind === "tool.refused") {
          redraw();
        }
      }
    });

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
      playButton.disabled = play.index >= play.total;
      pauseButton.disabled = true;
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
      var speed = Number(speedSelect.value);
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
      playButton.disabled = true;
      pauseButton.disabled = false;
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
      playButton.disabled = play.total === 0;
    }

    function load(run, turns, frames, label) {
      var seen = new Set();
      var cards = new Set();
      var sameRun = !run || run.id === undefined || run.id === config.run;
      cardTitles = sameRun ? config.cards || {} : {};
      setText("run_id", "run " + (run && run.id !== undefined ? run.id : config.run));
      source.run = run;
      source.turns = turns;
      source.frames = frames
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
      source.cardsTotal = sameRun ? Object.keys(config.cards || {}).length : cards.size;
      if (run) {
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
      restart();
      connection(label + ": " + source.frames.length + " events. Press Play.", "");
    }

    function loadStored() {
      connection("Loading the stored run...", "");
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
      Promise.all([getJSON(config.api.run), fetchAllTurns(config.api.turns), page(0)])
        .then(function (results) {
          load(results[0], results[1], results[2], "Stored run " + config.run);
        })
        .catch(function (error) {
          connection("Could not load the run: " + error.message, "bad");
        });
    }

    function loadFile(file) {
      stop();
      connection("Reading " + file.name + "...", "");
      file.text().then(function (text) {
        var run = null;
        var turns = [];
        var frames = [];
        var problems = 0;
        text.split(/\r?\n/).forEach(function (line) {
          if (!line.trim()) {
            return;
          }
          var item;
          try {
            item = JSON.parse(line);
          } catch (error) {
            problems += 1;
            return;
          }
          if (item.type === "run") {
            run = item.run || item;
          } else if (item.type === "turn") {
            turns.push(item.turn || item);
          } else if (item.type === "event") {
            frames.push(item.event || item.frame);
          }
        });
        if (!frames.length) {
          connection(file.name + " holds no events; is it a run export (JSON Lines)?", "bad");
          return;
        }
        load(run, turns, frames, file.name + (problems ? " (" + problems + " unreadable lines skipped)" : ""));
      });
    }

    playButton.addEventListener("click", start);
    pauseButton.addEventListener("click", function () {
      stop();
      connection("Paused at event " + renderer.lastSeq + ".", "");
    });
    restartButton.addEventListener("click", function () {
      restart();
      start();
    });
    fileInput.addEventListener("change", function () {
      if (fileInput.files && fileInput.files[0]) {
        loadFile(fileInput.files[0]);
      }
    });

    window.orketRun = {
      renderer: renderer,
      charts: charts,
      play: start,
      state: function () {
        return { lastSeq: renderer.lastSeq, index: play.index, total: play.total, playing: play.playing };
      }
    };
    loadStored();
  }

  if (config.mode === "replay") {
    startReplay();
  } else {
    startLive();
  }
})();
