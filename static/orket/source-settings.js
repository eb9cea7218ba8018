// The source repository page: while a clone runs, poll its status (a small JSON endpoint) and show
// the progress, the state and any error, then stop.
import { request } from "./api.js";

const page = document.getElementById("source-page");

function show(id, text) {
  const node = document.getElementById(id);
  if (node) {
    node.textContent = text;
  }
}

function showProblem(id, text) {
  const node = document.getElementById(id);
  if (node) {
    node.textContent = text || "";
    node.hidden = !text;
  }
}

async function poll(url) {
  let answer;
  try {
    const response = await request("GET", url);
    if (!response.ok) {
      return true;
    }
    answer = await response.json();
  } catch (error) {
    return true; // a network hiccup: try again
  }
  show("source-state", answer.state);
  show("source-phase", answer.progress_phase || "");
  const bar = document.getElementById("source-progress");
  if (bar) {
    bar.value = answer.progress || 0;
    bar.textContent = `${answer.progress || 0}%`;
  }
  showProblem("source-error", answer.error);
  showProblem("source-fetch-error", answer.fetch_error);
  if (answer.default_branch) {
    show("source-branch", answer.default_branch);
  }
  return answer.state === "cloning";
}

async function watch(url) {
  while (await poll(url)) {
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

if (page && page.dataset.statusUrl && document.getElementById("source-state")) {
  watch(page.dataset.statusUrl);
}
