/* The board's configuration, embedded by the page as JSON, and the state every part of the board shares. */

var configNode = document.getElementById("board-config");
export var config = configNode ? JSON.parse(configNode.textContent) : null;
export var boardNode = document.getElementById("board");
export var PRIORITY_WORDS = { high: 3, medium: 2, low: 1 };
export var WAITING = { blocked: true, waiting_for_developer: true };
export var FINAL = { done: true, canceled: true };
export var LABELS = config ? config.statusLabels : {}; // from the card model's status choices
export var ORDER_CHOICES = [
  { value: "order:up", text: "Up one" },
  { value: "order:down", text: "Down one" },
  { value: "order:top", text: "To the top" },
  { value: "order:bottom", text: "To the bottom" }
];
export var FIRST_PER_COLUMN = 30; // cards per column drawn at once on the first draw; the rest follow
export var SLICE_MS = 10; // then this much drawing per frame

export var state = {
  cards: new Map(),
  deps: new Map(), // card id -> [ids it depends on]
  depStatus: new Map(), // card id outside the loaded cards -> status
  epics: (config.epics || []).slice(),
  lanes: !!(config.view && config.view.lanes),
  wip: {},
  active: new Map(), // card id -> {seat, role, run}
  runs: [],
  searchIds: null,
  errors: new Map(), // card id -> refusal text shown next to the card
  nodes: new Map(), // card id -> {node, sig}
  columns: new Map(), // "lane:status" -> {section, list, count, ids}
  visible: new Map(), // "lane:status" -> [visible card ids in order]
  layoutKey: null,
  focused: null,
  openCard: null,
  live: null, // the board socket's handle (../socket.js)
  pending: new Set(),
  pendingTimer: null,
  moves: 0,
  reorders: 0,
  heard: new Set(), // cards named by live frames, for tests and debugging
  fetching: 0,
  drawing: false,
  dragId: null,
  teams: null
};
