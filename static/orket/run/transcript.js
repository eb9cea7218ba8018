/* The transcript renderer: every frame rendered once, keyed by its seq. */
import { el } from "../dom.js";
import { LONG_LINES, TURN_END, config } from "./config.js";
import { diffFold } from "../call_diff.js";
import { commandOutputFold } from "../command_log.js";
import * as steps from "../run_steps.js";
import { atMs, cardTitle, number, pretty, seatColor } from "./util.js";

export function Renderer(options) {
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
