// The plan page: follows a plan while the architect drafts it, then edits the draft (cards, seats,
// priorities, dependencies), checks it on the server and accepts it. Everything goes through the plan API.
import { request } from "./api.js";
import { el } from "./dom.js";

const config = JSON.parse(document.getElementById("plan-config").textContent);
const POLL_MS = 300;
const PRIORITIES = ["high", "medium", "low"];
const TEXTS = [
  ["description", "Description"],
  ["requirements", "Requirements"],
  ["acceptance_criteria", "Acceptance criteria"],
];
const nodes = {
  page: document.getElementById("plan-page"),
  status: document.getElementById("plan-status"),
  error: document.getElementById("plan-error"),
  warnings: document.getElementById("plan-warnings"),
  problems: document.getElementById("plan-problems"),
  editor: document.getElementById("plan-editor"),
  cards: document.getElementById("plan-cards"),
  done: document.getElementById("plan-done"),
};
let cards = [];
let extra = {};
let added = 0;
let busy = false;

async function api(url, method = "GET", body = undefined) {
  const response = await request(method, url, method !== "GET" ? body || {} : undefined);
  const data = await response.json().catch(() => ({ detail: `The server answered ${response.status}.` }));
  return { ok: response.ok, status: response.status, data };
}

function priorityWord(value) {
  if (typeof value === "string") return value.toLowerCase();
  if (value >= 2.5) return "high";
  if (value <= 1.5) return "low";
  return "medium";
}

function componentOf(card) {
  const label = (card.labels || []).find((item) => String(item).startsWith("component:"));
  return label ? String(label).slice("component:".length) : "";
}

function show(plan) {
  nodes.page.dataset.status = plan.status;
  const words = {
    drafting: `The architect (${plan.seat || "architect seat"}, ${plan.model || "model"}) is planning: step ${plan.step_count}${plan.last_call ? `, last call ${plan.last_call}` : ""}.`,
    draft: `Draft: ${(plan.document.cards || []).length} cards proposed. Nothing is created until you accept.`,
    accepted: `Accepted by ${plan.accepted_by || "-"}: ${plan.cards_created} cards were created.`,
    discarded: "Discarded: no cards were created.",
    failed: "The planning failed: no plan was made.",
  };
  nodes.status.textContent = words[plan.status] || plan.status;
  nodes.error.hidden = !plan.error;
  nodes.error.replaceChildren(...(plan.error ? [el("p", "", plan.error)] : []));
  nodes.warnings.replaceChildren(...(plan.warnings || []).map((text) => el("li", "note", text)));
  if (plan.status === "accepted") {
    nodes.editor.hidden = true;
    nodes.done.hidden = false;
    const link = el("a", "", "Open the board with the new cards");
    link.href = config.boardUrl;
    link.id = "plan-board-link";
    nodes.done.replaceChildren(link);
  }
}

function startEditing(plan) {
  const document_ = plan.document || {};
  extra = Object.fromEntries(Object.entries(document_).filter(([key]) => key !== "cards"));
  cards = (document_.cards || []).map((card, index) => ({ ...card, id: String(card.id || index + 1) }));
  // References by summary become references by id, so the dependency boxes show and change them.
  const bySummary = new Map(cards.map((card) => [card.summary, card.id]));
  const ids = new Set(cards.map((card) => card.id));
  for (const card of cards) {
    const refs = Array.isArray(card.depends_on) ? card.depends_on.map(String) : [];
    card.depends_on = refs.map((ref) => (ids.has(ref) ? ref : bySummary.get(ref) || ref));
  }
  nodes.editor.hidden = false;
  render();
  showProblems(plan.problems || []);
}

function field(labelText, input) {
  const label = el("label", "plan-field");
  label.append(el("span", "field-label", labelText), input);
  return label;
}

function cardNode(card, index) {
  const item = el("li", "plan-card");
  item.dataset.index = String(index);
  item.dataset.id = card.id;
  const disabled = !config.canAct;
  const summary = el("input", "plan-summary");
  summary.type = "text";
  summary.maxLength = 300;
  summary.value = card.summary || "";
  summary.disabled = disabled;
  summary.addEventListener("input", () => { card.summary = summary.value; });
  const seat = el("select", "plan-seat");
  const seats = [...config.seats];
  if (card.seat && !seats.includes(card.seat)) seats.push(card.seat);
  for (const name of seats) {
    const option = el("option", "", name);
    option.value = name;
    option.selected = name === card.seat;
    seat.append(option);
  }
  seat.disabled = disabled;
  seat.addEventListener("change", () => { card.seat = seat.value; });
  const priority = el("select", "plan-priority");
  for (const word of PRIORITIES) {
    const option = el("option", "", word);
    option.value = word;
    option.selected = word === priorityWord(card.priority ?? "medium");
    priority.append(option);
  }
  priority.disabled = disabled;
  priority.addEventListener("change", () => { card.priority = priority.value; });
  const head = el("div", "plan-card-head");
  head.append(field(`Card ${index + 1}: summary`, summary), field("Seat", seat), field("Priority", priority));
  if (config.canAct) {
    const remove = el("button", "secondary plan-remove", "Remove");
    remove.type = "button";
    remove.addEventListener("click", () => removeCard(index));
    head.append(remove);
  }
  item.append(head);
  for (const [name, labelText] of TEXTS) {
    const area = el("textarea", `plan-${name.replace("_", "-")}`);
    area.rows = 2;
    area.value = card[name] || "";
    area.disabled = disabled;
    area.addEventListener("input", () => { card[name] = area.value; });
    item.append(field(labelText, area));
  }
  const component = componentOf(card);
  if (component) item.append(el("p", "note", `Component folder: ${component}`));
  const deps = el("fieldset", "plan-deps");
  deps.append(el("legend", "", "Depends on"));
  const others = cards.filter((other) => other !== card);
  if (!others.length) deps.append(el("span", "note", "No other cards."));
  for (const other of others) {
    const box = el("input", "plan-dep");
    box.type = "checkbox";
    box.value = other.id;
    box.checked = (card.depends_on || []).map(String).includes(other.id);
    box.disabled = disabled;
    box.addEventListener("change", () => {
      const current = (card.depends_on || []).map(String).filter((id) => id !== other.id);
      card.depends_on = box.checked ? [...current, other.id] : current;
    });
    const label = el("label", "inline-label");
    label.append(box, document.createTextNode(` ${other.summary || other.id}`));
    deps.append(label);
  }
  item.append(deps);
  item.append(el("p", "error plan-card-problems"));
  return item;
}

function render() {
  nodes.cards.replaceChildren(...cards.map(cardNode));
}

function removeCard(index) {
  const [gone] = cards.splice(index, 1);
  for (const card of cards) {
    card.depends_on = (card.depends_on || []).map(String).filter((id) => id !== gone.id && id !== gone.summary);
  }
  render();
}

function addCard() {
  added += 1;
  cards.push({ id: `new-${added}`, summary: "", seat: config.seats[0] || "", priority: "medium", depends_on: [] });
  render();
  nodes.cards.lastElementChild.querySelector(".plan-summary").focus();
}

function currentDocument() {
  return { ...extra, cards: cards.map((card) => ({ ...card })) };
}

function showProblems(problems) {
  nodes.problems.hidden = !problems.length;
  const list = el("ul");
  for (const problem of problems) {
    list.append(el("li", "", problem.path ? `${problem.path}: ${problem.message}` : problem.message));
  }
  nodes.problems.replaceChildren(el("p", "", problems.length ? "The plan has problems; fix them before accepting:" : ""), list);
  for (const node of nodes.cards.querySelectorAll(".plan-card-problems")) node.textContent = "";
  for (const problem of problems) {
    const match = /^cards\[(\d+)\]/.exec(problem.path || "");
    const node = match && nodes.cards.children[Number(match[1])];
    if (node) node.querySelector(".plan-card-problems").textContent += `${problem.message}. `;
  }
}

async function send(url, body) {
  if (busy) return null;
  busy = true;
  try {
    const answer = await api(url, "POST", body);
    return answer;
  } finally {
    busy = false;
  }
}

async function save() {
  const answer = await api(config.api.plan, "PATCH", { document: currentDocument() });
  if (!answer.ok) {
    showProblems(answer.data.errors || [{ path: "", message: answer.data.detail }]);
    return;
  }
  show(answer.data);
  showProblems(answer.data.problems || []);
  nodes.page.dataset.checked = String(Number(nodes.page.dataset.checked || 0) + 1);
}

async function accept(event) {
  event.preventDefault();
  const answer = await send(config.api.accept, { document: currentDocument() });
  if (!answer) return;
  if (!answer.ok) {
    const errors = Array.isArray(answer.data.errors) ? answer.data.errors : [];
    showProblems(errors.length ? errors : [{ path: "", message: answer.data.detail }]);
    nodes.problems.prepend(el("p", "plan-refusal", answer.data.detail));
    return;
  }
  showProblems([]);
  show(answer.data);
}

async function discard() {
  const answer = await send(config.api.discard, {});
  if (answer && answer.ok) {
    nodes.editor.hidden = true;
    show(answer.data);
  }
}

async function follow() {
  const answer = await api(config.api.plan);
  if (!answer.ok) {
    nodes.status.textContent = answer.data.detail || "The plan could not be read.";
    return;
  }
  show(answer.data);
  if (answer.data.status === "drafting") {
    setTimeout(follow, POLL_MS);
  } else if (answer.data.status === "draft") {
    startEditing(answer.data);
  }
}

if (config.canAct) {
  document.getElementById("plan-add").addEventListener("click", addCard);
  document.getElementById("plan-save").addEventListener("click", save);
  document.getElementById("plan-discard").addEventListener("click", discard);
  nodes.editor.addEventListener("submit", accept);
}
follow();
