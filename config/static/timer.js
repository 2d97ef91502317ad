// Progressive enhancement: the remaining time of a timed question counts down on screen.
// Without JavaScript the page shows the time left when it was rendered; the server enforces
// the deadline either way.
(function () {
  var timer = document.querySelector("[data-deadline-seconds]");
  if (!timer) return;
  var left = parseInt(timer.getAttribute("data-deadline-seconds"), 10);
  var output = timer.querySelector("[data-seconds]");
  var alertAt = [30, 10];
  var live = document.getElementById("timer-alert");
  var tick = function () {
    left = Math.max(0, left - 1);
    output.textContent = String(left);
    if (alertAt.indexOf(left) !== -1 && live) {
      live.textContent = timer.getAttribute("data-alert").replace("%s", String(left));
    }
    if (left > 0) window.setTimeout(tick, 1000);
  };
  window.setTimeout(tick, 1000);
})();
