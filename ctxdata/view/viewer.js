// ctxdata pair viewer: probe buttons, running score, filters, heat-map toggle. No network, no eval.
(function () {
  "use strict";
  var pairs = Array.prototype.slice.call(document.querySelectorAll("article.pair"));
  var answered = 0, correct = 0;

  function updateScore() {
    document.getElementById("score").textContent = "score: " + correct + " / " + answered;
  }

  function reveal(pair) {
    pair.classList.add("revealed");
    pair.querySelector(".solution").hidden = false;
  }

  function answer(pair, choice) {
    if (pair.classList.contains("answered")) return;
    var label = pair.getAttribute("data-label");
    var right = choice === label;
    var verdict = pair.querySelector(".verdict");
    pair.classList.add("answered");
    answered += 1;
    if (right) correct += 1;
    verdict.textContent = right ? "right: " + label + " supports the answer" : "wrong: it was " + label;
    verdict.className = "verdict " + (right ? "right" : "wrong");
    reveal(pair);
    updateScore();
  }

  function toggleHeat(pair, button) {
    var heat = pair.querySelector(".heatmap");
    var on = !pair.classList.contains("show-heat");
    pair.classList.toggle("show-heat", on);
    heat.hidden = !on;
    button.textContent = on ? "Side by side" : "Difference heat map";
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) return;
    var pair = button.closest("article.pair");
    var action = button.getAttribute("data-action");
    if (action === "answer") answer(pair, button.getAttribute("data-choice"));
    else if (action === "reveal") reveal(pair);
    else if (action === "heatmap") toggleHeat(pair, button);
  });

  function applyFilters() {
    var method = document.getElementById("f-method").value;
    var domain = document.getElementById("f-domain").value;
    var failedOnly = document.getElementById("f-failed").checked;
    var shown = 0;
    pairs.forEach(function (pair) {
      var ok = (!method || pair.getAttribute("data-method") === method) &&
        (!domain || pair.getAttribute("data-domain") === domain) &&
        (!failedOnly || pair.getAttribute("data-failed") === "1");
      pair.hidden = !ok;
      if (ok) shown += 1;
    });
    document.getElementById("shown").textContent = "showing " + shown + " of " + pairs.length + " pairs";
  }

  ["f-method", "f-domain", "f-failed"].forEach(function (id) {
    document.getElementById(id).addEventListener("change", applyFilters);
  });

  // Scroll each trajectory panel so its first divergent step is in view.
  pairs.forEach(function (pair) {
    pair.querySelectorAll(".traj").forEach(function (panel) {
      var step = panel.querySelector(".step.divergent");
      if (step) panel.scrollTop = Math.max(0, step.offsetTop - 40);
    });
  });

  applyFilters();
  updateScore();
})();
