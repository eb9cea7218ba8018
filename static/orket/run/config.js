/* The run view's configuration, embedded by the page as JSON, and the constants of its frames. */

var configNode = document.getElementById("run-config");
export var config = configNode ? JSON.parse(configNode.textContent) : null;
export var FINAL = { succeeded: true, failed: true, canceled: true };
export var TURN_END = { "turn.succeeded": true, "turn.failed": true, "turn.canceled": true, "turn.requeued": true, "turn.waiting": true };
export var LONG_LINES = 14;
