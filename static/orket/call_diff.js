/* In the run view, each write_file, edit_file or delete_file result gets a fold that shows that file's
 * change in the step's commit (fetched when opened). */

import { cardApi, getJson, renderDiff } from "./code_render.js";
import { el } from "./dom.js";

const WRITES = { write_file: true, edit_file: true, delete_file: true };

export function diffFold(parent, frame, project) {
  const result = frame.result || {};
  if (!WRITES[frame.name] || !project || frame.card === null || frame.card === undefined || frame.turn === null || frame.turn === undefined || typeof result.path !== "string") {
    return;
  }
  const fold = el("details", "line call-diff fold");
  const summary = el("summary", "fold-summary");
  summary.appendChild(el("span", "line-label", "Diff of " + result.path));
  fold.appendChild(summary);
  const body = el("div", "call-diff-body");
  fold.appendChild(body);
  let loaded = false;
  fold.addEventListener("toggle", function () {
    if (!fold.open || loaded) {
      return;
    }
    loaded = true;
    const query = new URLSearchParams({ turn: String(frame.turn), path: result.path });
    if (typeof frame.step === "number") {
      query.set("step", String(frame.step));
    }
    body.appendChild(el("p", "muted", "Loading..."));
    getJson(cardApi(project, frame.card) + "diff/?" + query.toString())
      .then(function (data) {
        body.textContent = "";
        body.appendChild(renderDiff(data));
      })
      .catch(function (error) {
        body.textContent = "";
        body.appendChild(el("p", "error", "The diff could not be loaded: " + error.message));
        loaded = false;
      });
  });
  parent.appendChild(fold);
}
