/* The header of the run view: status, tokens against the budget, elapsed time and the connection. */
import { FINAL, config } from "./config.js";
import { duration, field, number, setText } from "./util.js";

export var header = {
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

export function connection(text, kind) {
  var node = field("connection");
  if (node) {
    node.textContent = text;
    node.dataset.state = kind || "";
  }
}
