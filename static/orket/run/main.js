/* Orket run view and replay: renders run event frames (live from the WebSocket, or played back from
 * the events API or an export file) into the transcript, the header and the charts.
 *
 * Every frame is rendered once, keyed by its seq: frames at or below the last rendered seq are
 * ignored, so a reconnect that resumes from the last seq can neither duplicate nor skip a line.
 * A turn shows its steps as they happen (../run_steps.js builds them). All model output is inserted
 * with textContent, never as HTML. Chart.js is the one classic script before this module.
 *
 * The parts: config.js (the page's JSON), util.js, transcript.js (the renderer), charts.js,
 * header.js, live.js (live mode) and replay.js (replay mode).
 */
import { config } from "./config.js";
import { startLive } from "./live.js";
import { startReplay } from "./replay.js";

if (config && config.mode === "replay") {
  startReplay();
} else if (config) {
  startLive();
}
