/* Orket: what a waiting card asks of a person. In the card drawer and on the run view it shows the
 * tool calls that wait for approval (Approve, or Reject with a reason the agent reads) and, for a
 * blocked card, its question with an Answer box. Decisions and answers go through the API; the board
 * and run streams bring the consequences (history, status, the resumed turn).
 *
 *   import * as approvals from "./approvals.js";
 *   approvals.drawer(cardId, canAct)            // the board's card drawer
 *   approvals.showCard(container, cardId, {canAct: true, onChange: fn})
 *   approvals.runPage(runId, canAct)             // the run view's #run-approvals
 *
 * All text from the server goes in with textContent.
 */
import { requestJSON } from "./api.js";
import { el } from "./dom.js";

// What the last answer on a card led to, kept while the page lives: the drawer is redrawn when the
// card moves (it is no longer waiting then), and the person must still read whether to press Run.
var answered = {};

function describeRefusal(data, status) {
  if (status === 403) {
    return "Only members of the project decide this.";
  }
  return data.detail || data.message || "The request failed (" + status + ").";
}

function api(method, url, body) {
  return requestJSON(method, url, method !== "GET" ? body || {} : undefined, describeRefusal).then(function (data) {
    return data === null ? {} : data;
  });
}

function callText(approval) {
  var args = Object.keys(approval.arguments || {}).map(function (key) {
    return key + "=" + JSON.stringify(approval.arguments[key]);
  });
  return approval.tool + "(" + args.join(", ") + ")";
}

function where(approval) {
  return "Turn " + approval.turn_number + ", step " + approval.step + ", call " + approval.call;
}

function decidedText(approval) {
  if (approval.status === "approved") {
    return "Approved by " + approval.decided_by;
  }
  if (approval.status === "rejected") {
    return "Rejected by " + approval.decided_by + ": " + approval.reason;
  }
  return approval.status === "canceled" ? "Canceled with its run" : "Waiting for a person";
}

function approvalNode(approval, options) {
  var item = el("li", "approval approval-" + approval.status);
  item.dataset.approval = String(approval.id);
  item.dataset.step = String(approval.step);
  item.appendChild(el("div", "approval-where", where(approval)));
  item.appendChild(el("pre", "approval-call", callText(approval)));
  var state = el("div", "approval-state", decidedText(approval));
  item.appendChild(state);
  if (approval.status !== "pending" || !options.canAct) {
    return item;
  }
  var error = el("p", "error");
  error.setAttribute("role", "alert");
  var reasonLabel = el("label", null, "Reason (required to reject; the agent reads it)");
  var reason = el("textarea", "approval-reason");
  reason.rows = 2;
  reason.maxLength = 5000;
  reason.id = "approval-reason-" + approval.id;
  reasonLabel.htmlFor = reason.id;
  var approve = el("button", "approval-approve", "Approve");
  approve.type = "button";
  var reject = el("button", "secondary approval-reject", "Reject");
  reject.type = "button";
  function decide(decision) {
    if (decision === "reject" && !reason.value.trim()) {
      error.textContent = "Say why you reject the call: the agent reads the reason.";
      reason.focus();
      return;
    }
    approve.disabled = reject.disabled = true;
    error.textContent = "";
    api("POST", "/api/approvals/" + approval.id + "/decide/", { decision: decision, reason: reason.value })
      .then(function (decided) {
        state.textContent = decidedText(decided);
        item.className = "approval approval-" + decided.status;
        [reasonLabel, reason, approve, reject].forEach(function (node) {
          node.remove();
        });
        if (options.onChange) {
          options.onChange();
        }
      })
      .catch(function (failure) {
        error.textContent = failure.message;
        approve.disabled = reject.disabled = false;
      });
  }
  approve.addEventListener("click", function () {
    decide("approve");
  });
  reject.addEventListener("click", function () {
    decide("reject");
  });
  item.appendChild(reasonLabel);
  item.appendChild(reason);
  var buttons = el("div", "drawer-buttons");
  buttons.appendChild(approve);
  buttons.appendChild(document.createTextNode(" "));
  buttons.appendChild(reject);
  item.appendChild(buttons);
  item.appendChild(error);
  return item;
}

function approvalList(approvals, options) {
  var list = el("ol", "approvals");
  approvals.forEach(function (approval) {
    list.appendChild(approvalNode(approval, options));
  });
  return list;
}

function answerBox(container, data, options) {
  var box = el("div", "answer");
  box.appendChild(el("h4", null, "The card asks"));
  box.appendChild(el("div", "plain-text answer-question", data.question || "The card waits (" + (data.wait_reason || "no reason given") + ")."));
  if (!options.canAct) {
    return box;
  }
  var form = el("form", "answer-form");
  var label = el("label", null, "Your answer (added as your comment; the card goes back to ready)");
  var body = el("textarea", "answer-body");
  body.id = "answer-body";
  body.rows = 3;
  body.maxLength = 20000;
  body.required = true;
  label.htmlFor = body.id;
  var send = el("button", "answer-send", "Answer");
  send.type = "submit";
  var note = el("p", "answer-note");
  note.setAttribute("role", "status");
  form.appendChild(label);
  form.appendChild(body);
  form.appendChild(send);
  form.appendChild(note);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    send.disabled = true;
    note.textContent = "";
    api("POST", "/api/cards/" + data.card + "/answer/", { body: body.value })
      .then(function (result) {
        body.value = "";
        note.textContent = answered[data.card] = result.resumed
          ? "Answered. Run #" + result.run + " is still going and picks the card up."
          : "Answered. No run of this epic is going: press Run to let the agents continue.";
        if (options.onChange) {
          options.onChange();
        }
      })
      .catch(function (failure) {
        note.textContent = failure.message;
        send.disabled = false;
      });
  });
  box.appendChild(form);
  return box;
}

function showCard(container, cardId, options) {
  options = options || {};
  return api("GET", "/api/cards/" + cardId + "/waiting/").then(function (data) {
    if (options.stillWanted && !options.stillWanted()) {
      return data;
    }
    container.textContent = "";
    var pending = data.approvals.filter(function (approval) {
      return approval.status === "pending";
    });
    container.hidden = !data.approvals.length && !data.question;
    if (pending.length) {
      container.appendChild(el("h3", null, "Tool calls waiting for approval"));
      container.appendChild(approvalList(pending, options));
    } else if (data.status === "blocked" || data.status === "waiting_for_developer") {
      container.appendChild(answerBox(container, data, options));
    } else if (answered[data.card]) {
      container.hidden = false;
      var note = el("p", "answer-note", answered[data.card]);
      note.setAttribute("role", "status");
      container.appendChild(note);
    }
    var decided = data.approvals.filter(function (approval) {
      return approval.status !== "pending";
    });
    if (decided.length) {
      container.appendChild(el("h3", null, "Decided tool calls"));
      container.appendChild(approvalList(decided, options));
    }
    return data;
  });
}

function showRun(container, runId, options) {
  options = options || {};
  return api("GET", "/api/runs/" + runId + "/approvals/").then(function (data) {
    container.textContent = "";
    container.hidden = !data.results.length;
    if (data.results.length) {
      container.appendChild(el("h2", null, "Tool calls for a person to decide"));
      container.appendChild(approvalList(data.results, options));
    }
    return data;
  });
}

/* The board's hook: fill the drawer's #drawer-waiting for the card it shows. */
function drawer(cardId, canAct) {
  var holder = document.getElementById("drawer-waiting");
  var drawerNode = document.getElementById("drawer");
  if (!holder) {
    return;
  }
  showCard(holder, cardId, {
    canAct: canAct,
    stillWanted: function () {
      return drawerNode && drawerNode.dataset.card === String(cardId);
    },
  }).catch(function (failure) {
    holder.hidden = false;
    holder.textContent = failure.message;
  });
}

/* The run view's hook: the run's calls waiting for a person, in #run-approvals. */
function runPage(runId, canAct) {
  var holder = document.getElementById("run-approvals");
  if (!holder) {
    return;
  }
  showRun(holder, runId, { canAct: canAct }).catch(function (failure) {
    holder.hidden = false;
    holder.textContent = failure.message;
  });
}

export { showCard, showRun, drawer, runPage };
