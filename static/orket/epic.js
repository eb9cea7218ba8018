/* The epic page's charts: a cumulative flow diagram and a burndown, drawn from numbers the server
   computed from the card history (boards.settings_pages.epic_flow). Vanilla JS and Chart.js 4. */
function drawEpicPage() {
  // The progress bar's width comes from a data attribute: the page's policy refuses style attributes.
  var bar = document.querySelector("#progress .progress span[data-percent]");
  if (bar) { bar.style.width = Math.max(0, Math.min(100, Number(bar.dataset.percent) || 0)) + "%"; }
  var holder = document.getElementById("epic-charts");
  if (!holder) { return; }
  var data = JSON.parse(holder.textContent);
  var colors = {
    ready: "#6b7280", in_progress: "#1d4ed8", blocked: "#b42318", waiting_for_developer: "#b45309",
    ready_for_testing: "#7c3aed", code_review: "#0e7490", done: "#1f7a3d", canceled: "#9ca3af"
  };
  var labels = data.labels.map(function (stamp) {
    var when = new Date(stamp);
    return isNaN(when.getTime()) ? stamp : when.toLocaleString();
  });

  var body = document.getElementById("chart-table");
  if (body) {
    data.labels.forEach(function (stamp, index) {
      var row = document.createElement("tr");
      var cells = [labels[index]].concat(data.statuses.map(function (s) { return data.flow[s][index]; }));
      cells.push(data.burndown[index]);
      cells.forEach(function (value) {
        var cell = document.createElement("td");
        cell.textContent = String(value);
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
  }

  if (typeof window.Chart === "undefined" || !data.labels.length) { return; }
  var flowCanvas = document.getElementById("chart-flow");
  var burnCanvas = document.getElementById("chart-burndown");
  // Cumulative flow: final states at the bottom, so the bands read like a classic CFD.
  var order = data.statuses.slice().reverse();
  if (flowCanvas) {
    new window.Chart(flowCanvas, {
      type: "line",
      data: {
        labels: labels,
        datasets: order.map(function (status) {
          return {
            label: data.statusLabels[status] || status,
            data: data.flow[status],
            borderColor: colors[status] || "#374151",
            backgroundColor: (colors[status] || "#374151") + "99",
            fill: true,
            stepped: true,
            pointRadius: 2,
            borderWidth: 1
          };
        })
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "cards" } },
                  x: { ticks: { maxTicksLimit: 8 } } }
      }
    });
  }
  if (burnCanvas) {
    new window.Chart(burnCanvas, {
      type: "line",
      data: {
        labels: labels,
        datasets: [{ label: "Open cards", data: data.burndown, borderColor: "#1d4ed8",
                     backgroundColor: "#1d4ed833", fill: true, stepped: true, pointRadius: 2 }]
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "open cards" } },
                  x: { ticks: { maxTicksLimit: 8 } } }
      }
    });
  }
}

drawEpicPage();
