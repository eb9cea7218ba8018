/* The run charts (Chart.js, a classic script of the page): tokens per seat and the turns over time. */
import { cardTitle, seatColor } from "./util.js";

export function Charts() {
  this.turnRecords = new Map();
  this.available = typeof window.Chart === "function";
  this.timeline = null;
  this.bySeat = null;
  this.byModel = null;
}

Charts.prototype.setTurns = function (turns) {
  var self = this;
  turns.forEach(function (turn) {
    self.turnRecords.set(turn.id, turn);
  });
};

Charts.prototype.reset = function () {
  this.turnRecords = new Map();
};

Charts.prototype.make = function (id, options) {
  var canvas = document.getElementById(id);
  if (!canvas || !this.available) {
    return null;
  }
  return new window.Chart(canvas, options);
};

Charts.prototype.draw = function (renderer, nowMs) {
  if (!this.available) {
    return;
  }
  this.drawTimeline(renderer, nowMs);
  this.drawGroups(renderer);
};

Charts.prototype.drawTimeline = function (renderer, nowMs) {
  var origin = renderer.firstAt;
  var rows = [];
  var datasets = new Map();
  function row(card) {
    var label = card === null || card === undefined ? "Without a card" : cardTitle(card);
    if (rows.indexOf(label) === -1) {
      rows.push(label);
    }
    return label;
  }
  renderer.segments.forEach(function (segment) {
    if (segment.start === null || origin === null) {
      return;
    }
    var end = segment.end !== null ? segment.end : nowMs;
    var seat = segment.seat || "seat";
    if (!datasets.has(seat)) {
      var colour = seatColor(seat);
      datasets.set(seat, {
        type: "bar",
        label: seat,
        data: [],
        backgroundColor: colour,
        borderColor: colour,
        borderWidth: 1,
        borderSkipped: false,
        grouped: false,
        barPercentage: 0.7,
        categoryPercentage: 0.9
      });
    }
    datasets.get(seat).data.push({
      y: row(segment.card),
      x: [(segment.start - origin) / 1000, Math.max(segment.start + 150, end) / 1000 - origin / 1000],
      status: segment.status
    });
  });
  var refusals = {
    type: "scatter",
    label: "refusal",
    data: [],
    pointStyle: "rectRot",
    pointRadius: 7,
    pointHoverRadius: 9,
    borderWidth: 3,
    borderColor: "#b42318",
    backgroundColor: "#ffffff",
    order: -1
  };
  renderer.refusals.forEach(function (refusal) {
    if (refusal.at !== null && origin !== null) {
      refusals.data.push({ x: (refusal.at - origin) / 1000, y: row(refusal.card) });
    }
  });
  var all = Array.from(datasets.values());
  all.push(refusals);
  var holder = document.querySelector(".timeline-holder");
  if (holder) {
    holder.style.height = Math.max(140, 60 + rows.length * 34) + "px";
  }
  if (!this.timeline) {
    this.timeline = this.make("chart-timeline", {
      type: "bar",
      data: { labels: rows, datasets: all },
      options: {
        indexAxis: "y",
        animation: false,
        maintainAspectRatio: false,
        parsing: { xAxisKey: "x", yAxisKey: "y" },
        scales: {
          x: { type: "linear", min: 0, title: { display: true, text: "seconds since the run started" } },
          y: { type: "category", labels: rows, ticks: { autoSkip: false } }
        },
        plugins: {
          legend: {
            position: "bottom",
            labels: {
              boxWidth: 12,
              sort: function (a, b) {
                return (a.text === "refusal" ? 1 : 0) - (b.text === "refusal" ? 1 : 0);
              },
              filter: function (item, data) {
                var dataset = data.datasets[item.datasetIndex];
                return !(dataset.type === "scatter" && dataset.data.length === 0);
              }
            }
          },
          tooltip: {
            callbacks: {
              label: function (context) {
                var raw = context.raw || {};
                if (Array.isArray(raw.x)) {
                  return context.dataset.label + ": " + raw.x[0].toFixed(1) + "s to " + raw.x[1].toFixed(1) + "s (" + raw.status + ")";
                }
                return "refusal at " + Number(raw.x).toFixed(1) + "s";
              }
            }
          }
        }
      }
    });
    return;
  }
  this.timeline.data.labels = rows;
  this.timeline.options.scales.y.labels = rows;
  this.timeline.data.datasets = all;
  this.timeline.update("none");
};

Charts.prototype.drawGroups = function (renderer) {
  var bySeat = new Map();
  var byModel = new Map();
  function add(map, key, turn) {
    var item = map.get(key) || { tokensIn: 0, tokensOut: 0, seconds: 0 };
    item.tokensIn += turn.tokens_in || 0;
    item.tokensOut += turn.tokens_out || 0;
    item.seconds += (turn.duration_ms || 0) / 1000;
    map.set(key, item);
  }
  this.turnRecords.forEach(function (turn) {
    if (!renderer.endedTurns.has(turn.id)) {
      return;
    }
    add(bySeat, turn.seat || "seat", turn);
    add(byModel, turn.provider === "scripted" ? "scripted" : turn.model || "?", turn);
  });
  this.bySeat = this.drawGroup(this.bySeat, "chart-seat", bySeat, true);
  this.byModel = this.drawGroup(this.byModel, "chart-model", byModel, false);
};

Charts.prototype.drawGroup = function (chart, id, groups, colourBySeat) {
  var labels = Array.from(groups.keys());
  var values = Array.from(groups.values());
  var seatColours = labels.map(function (label) {
    return colourBySeat ? seatColor(label) : "#2f5bd3";
  });
  var datasets = [
    {
      label: "tokens in",
      data: values.map(function (v) { return v.tokensIn; }),
      backgroundColor: seatColours.map(function (c) { return c + "66"; }),
      borderColor: seatColours,
      borderWidth: 1,
      stack: "tokens",
      yAxisID: "y"
    },
    {
      label: "tokens out",
      data: values.map(function (v) { return v.tokensOut; }),
      backgroundColor: seatColours,
      stack: "tokens",
      yAxisID: "y"
    },
    {
      label: "seconds",
      data: values.map(function (v) { return Math.round(v.seconds * 10) / 10; }),
      backgroundColor: "#5b6477",
      stack: "time",
      yAxisID: "seconds"
    }
  ];
  if (!chart) {
    return this.make(id, {
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          y: { beginAtZero: true, stacked: true, title: { display: true, text: "tokens" } },
          seconds: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "seconds" } },
          x: { stacked: true }
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } }
      }
    });
  }
  chart.data.labels = labels;
  chart.data.datasets = datasets;
  chart.update("none");
  return chart;
};
