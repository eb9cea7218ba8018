/* The steps of a turn in the run view: each step's header, the folded result of a tool call, the
 * refusal label and the wording of the step events. Pure DOM building, no state: run/transcript.js keeps track of
 * which step is open and calls these. Text always goes in with textContent, never as HTML. */

const SUMMARY_CHARS = 160;

const OUTCOMES = {
  calls: "made its calls",
  no_call: "made no call",
  handoff: "handed the card on",
  finished: "finished the turn",
  limit: "stopped at a limit",
  budget: "stopped: budget spent",
  blocked: "blocked the card",
  approval: "waits for a person's approval"
};

import { el } from "./dom.js";

function count(value) {
  return Number(value || 0).toLocaleString("en-US");
}

export function millis(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) {
    return "";
  }
  return ms >= 1000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms) + " ms";
}

/* A value as a person reads it: strings as they are, an object as "key: value" lines, with a
 * multi-line string (a file's content) shown under its key rather than as one escaped line. */
export function readable(value) {
  if (value === undefined || value === null) {
    return "";
  }
  if (typeof value === "string") {
    return value;
  }
  if (typeof value !== "object" || Array.isArray(value)) {
    return JSON.stringify(value, null, 2);
  }
  return Object.keys(value)
    .map(function (key) {
      const item = value[key];
      if (typeof item === "string") {
        return item.indexOf("\n") === -1 ? key + ": " + item : key + ":\n" + item.replace(/\n$/, "");
      }
      return key + ": " + JSON.stringify(item, null, 2);
    })
    .join("\n");
}

/* The first line worth showing of a value, cut to a summary's length. */
export function firstLine(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value === undefined ? "" : value);
  const line = (text.split("\n").find((part) => part.trim() !== "") || "").trim();
  return line.length > SUMMARY_CHARS ? line.slice(0, SUMMARY_CHARS - 3) + "..." : line;
}

/* A step's block: a header (its number, then the prompt size, then how it ended) and a body for the
 * streamed answer and the calls. The header parts get their data-seq from the events that fill them. */
export function stepBlock(number) {
  const node = el("section", "step step-open");
  node.dataset.step = String(number);
  const head = el("header", "step-head");
  const start = el("span", "step-start");
  start.appendChild(el("span", "step-title", "Step " + number));
  const request = el("span", "step-request", "");
  start.appendChild(request);
  head.appendChild(start);
  const end = el("span", "step-end", "answering...");
  head.appendChild(end);
  node.appendChild(head);
  const body = el("div", "step-body");
  node.appendChild(body);
  return { number: number, node: node, start: start, request: request, end: end, body: body, lastCall: null, announced: false, finished: false };
}

export function requestFacts(frame) {
  const facts = ["prompt " + count(frame.request_tokens) + " tokens"];
  if (frame.shortened) {
    facts.push(frame.shortened + " message(s) shortened");
  }
  if (frame.omitted_steps) {
    facts.push(frame.omitted_steps + " earlier step(s) left out");
  }
  return facts.join(", ");
}

export function finishedFacts(frame) {
  const facts = [count(frame.tokens_in) + " in / " + count(frame.tokens_out) + " out tokens"];
  if (frame.model_ms !== undefined && frame.model_ms !== null) {
    facts.push("model " + millis(frame.model_ms));
  }
  if (frame.engine_ms !== undefined && frame.engine_ms !== null) {
    facts.push("engine " + millis(frame.engine_ms));
  }
  facts.push(OUTCOMES[frame.outcome] || String(frame.outcome || "finished"));
  return facts.join(" \u00b7 ");
}

/* The visible label of a refusal: colour comes from its class, the words say it too. */
export function refusalLabel(rule) {
  return el("span", "refusal-label", "refused: " + (rule || "rule not given"));
}

/* A tool result folded to its first line; the whole result shows when the fold is opened. */
export function resultFold(frame) {
  const fold = el("details", "line tool-result fold");
  fold.dataset.seq = frame.seq;
  fold.dataset.kind = frame.kind;
  const summary = el("summary", "fold-summary");
  summary.appendChild(el("span", "line-label", "Result of " + (frame.name || "?")));
  summary.appendChild(el("span", "fold-first", firstLine(readable(frame.result))));
  fold.appendChild(summary);
  fold.appendChild(el("pre", "fold-body", readable(frame.result)));
  return fold;
}

export function schemaShapeText(frame) {
  const profile = frame.profile ? " of profile " + frame.profile : "";
  let text;
  if (frame.shape === "unsupported") {
    text = "Constrained output: the server" + profile + " takes no schema; the model answers unconstrained.";
  } else if (frame.shape) {
    text = "Constrained output: the server" + profile + " takes the schema as " + frame.shape + ".";
  } else {
    text = "Constrained output: the server" + profile + " refused the remembered schema shape; finding it again.";
  }
  return frame.detail ? text + " (" + frame.detail + ")" : text;
}

/* A call that waits for a person, and the person's decision, in the call's group of the transcript. */
export function approvalLine(renderer, parent, frame) {
  let node;
  if (frame.kind === "approval.requested") {
    node = renderer.line(parent, frame, "approval-line", "Waiting for a person to approve: " + (frame.name || "?"));
    renderer.detail(node, "where", "step " + frame.step + ", call " + frame.call);
  } else if (frame.kind === "approval.decided") {
    const verb = frame.status === "approved" ? "Approved" : "Rejected";
    node = renderer.line(parent, frame, "approval-line approval-" + frame.status, verb + " by " + (frame.by || "?"));
    renderer.detail(node, "where", "step " + frame.step + ", call " + frame.call + " (" + (frame.name || "") + ")");
    renderer.detail(node, "reason", frame.reason);
  } else {
    node = renderer.line(parent, frame, "refused approval-rejected", "Rejected: " + (frame.name || "?"));
    renderer.detail(node, "message", frame.message);
  }
  return node;
}
