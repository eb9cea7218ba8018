/* Card nodes: built once and reused while a card looks the same (its signature decides). */
import { FINAL, LABELS, WAITING, config, state } from "./config.js";
import { el } from "../dom.js";
import { priorityText, safeUrl } from "./text.js";

function depInfo(card) {
  var list = state.deps.get(card.id) || [];
  var open = list.filter(function (id) {
    var other = state.cards.get(id);
    var status = other ? other.status : state.depStatus.get(id);
    return status !== "done";
  });
  return { total: list.length, open: open };
}

function depText(deps) {
  if (!deps.total) {
    return "";
  }
  if (deps.open.length) {
    return "waits on " + deps.open.map(function (id) { return "#" + id; }).join(", ");
  }
  return deps.total === 1 ? "dependency done" : deps.total + " dependencies done";
}

export function pullRequest(card) {
  var pr = card.pull_request;
  if (!pr || typeof pr !== "object" || !pr.number) {
    return null;
  }
  return { number: pr.number, url: safeUrl(pr.url), state: pr.state ? String(pr.state) : "" };
}

export function signature(card) {
  var agent = state.active.get(card.id);
  var pr = pullRequest(card);
  return [
    card.title, card.status, card.priority, card.wait_reason, card.seat, (card.labels || []).join(","),
    card.last_verification, depText(depInfo(card)), agent ? agent.seat + "/" + agent.role + "/" + agent.run : "",
    pr ? pr.number + "/" + pr.url + "/" + pr.state : "", card.review_cycle || 0, state.errors.get(card.id) || "",
    config.canAct
  ].join("\u0001");
}

function cardNode(card) {
  var node = el("article", "board-card");
  node.tabIndex = 0;
  node.dataset.card = String(card.id);
  node.dataset.status = card.status;
  node.setAttribute("aria-label", "#" + card.id + " " + card.title + ", " + LABELS[card.status]);
  if (config.canAct && !FINAL[card.status]) {
    node.draggable = true;
  }
  node.appendChild(el("h3", "card-title", card.title));
  var meta = el("div", "card-meta");
  meta.appendChild(el("span", "card-id", "#" + card.id));
  meta.appendChild(el("span", "badge priority priority-" + priorityText(card.priority), priorityText(card.priority)));
  if (card.seat) {
    meta.appendChild(el("span", "badge seat", card.seat));
  }
  (card.labels || []).forEach(function (label) {
    meta.appendChild(el("span", "badge label", label));
  });
  node.appendChild(meta);
  var flags = el("div", "card-flags");
  var deps = depInfo(card);
  if (deps.total) {
    var dep = el("span", "badge dependency" + (deps.open.length ? " open" : ""), depText(deps));
    dep.dataset.flag = "dependency";
    flags.appendChild(dep);
  }
  if (WAITING[card.status]) {
    var blocked = el("span", "badge blocked", (card.status === "blocked" ? "blocked" : "waiting") + (card.wait_reason ? ": " + card.wait_reason : ""));
    blocked.dataset.flag = "blocked";
    flags.appendChild(blocked);
  }
  if (card.last_verification) {
    var verify = el("span", "badge verify-" + card.last_verification, "verification " + card.last_verification);
    verify.dataset.flag = "verification";
    flags.appendChild(verify);
  }
  var pr = pullRequest(card);
  if (pr) {
    var prNode = el(pr.url ? "a" : "span", "badge pr pr-" + (pr.state || "open"), "PR #" + pr.number + (pr.state ? " " + pr.state : ""));
    if (pr.url) {
      prNode.href = pr.url;
      prNode.rel = "noopener noreferrer";
      prNode.target = "_blank";
      prNode.setAttribute("aria-label", "Pull request " + pr.number + (pr.state ? ", " + pr.state : "") + " (opens in a new tab)");
    }
    prNode.dataset.flag = "pull-request";
    flags.appendChild(prNode);
  }
  if (Number(card.review_cycle) > 0) {
    var cycle = el("span", "badge review-cycle", "review cycle " + Number(card.review_cycle));
    cycle.dataset.flag = "review-cycle";
    cycle.title = "Changes were requested " + Number(card.review_cycle) + " time" + (Number(card.review_cycle) === 1 ? "" : "s");
    flags.appendChild(cycle);
  }
  var agent = state.active.get(card.id);
  if (agent) {
    var working = el("span", "badge agent", "agent: " + agent.seat + (agent.role && agent.role !== agent.seat ? " (" + agent.role + ")" : ""));
    working.dataset.flag = "agent";
    working.title = "An agent is working on this card right now (run " + agent.run + ")";
    flags.appendChild(working);
  }
  if (flags.childNodes.length) {
    node.appendChild(flags);
  }
  if (config.canAct) {
    // One light button per card; the menu itself is shared (see openMoveMenu), which keeps a
    // board of thousands of cards cheap to draw.
    var button = el("button", "move-button", "Move\u2026");
    button.type = "button";
    button.setAttribute("aria-haspopup", "menu");
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-label", "Move card #" + card.id);
    node.appendChild(button);
  }
  var error = state.errors.get(card.id);
  if (error) {
    node.appendChild(el("p", "card-error", error));
    node.classList.add("refused");
  }
  return node;
}

export function nodeFor(card, known) {
  var sig = known === undefined ? signature(card) : known;
  var cached = state.nodes.get(card.id);
  if (cached && cached.sig === sig) {
    return cached.node;
  }
  var node = cardNode(card);
  state.nodes.set(card.id, { node: node, sig: sig });
  return node;
}
