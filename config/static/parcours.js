// Progressive enhancement shared by every page; without JavaScript the header's links wrap and
// wide tables scroll inside themselves.
(function () {
  // The header's links fold behind a "Menu" button on narrow screens (the CSS decides when).
  var header = document.querySelector(".site-header");
  var toggle = header && header.querySelector(".menu-toggle");
  var nav = header && header.querySelector("nav");
  if (toggle && nav) {
    var setOpen = function (open) {
      toggle.setAttribute("aria-expanded", String(open));
      nav.setAttribute("data-open", String(open));
    };
    setOpen(false);
    header.classList.add("has-menu");
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      setOpen(toggle.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
        setOpen(false);
        toggle.focus();
      }
    });
  }

  // On a phone a table reads as a stack of cards: each cell carries its column's name.
  document.querySelectorAll("table").forEach(function (table) {
    var head = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
    if (!head) return;
    var names = [];
    Array.prototype.forEach.call(head.cells, function (cell) {
      for (var span = 0; span < (cell.colSpan || 1); span++) names.push(cell.textContent.trim());
    });
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        var column = 0;
        Array.prototype.forEach.call(row.cells, function (cell) {
          if (names[column] && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", names[column]);
          column += cell.colSpan || 1;
        });
      });
    });
    // Some screen readers drop a table's semantics once its rows are laid out as blocks: say
    // them explicitly.
    table.setAttribute("role", "table");
    Array.prototype.forEach.call(table.querySelectorAll("thead, tbody, tfoot"), function (group) {
      group.setAttribute("role", "rowgroup");
    });
    Array.prototype.forEach.call(table.rows, function (row) {
      row.setAttribute("role", "row");
      Array.prototype.forEach.call(row.cells, function (cell) {
        var role = "cell";
        if (cell.tagName === "TH") role = cell.closest("thead") ? "columnheader" : "rowheader";
        cell.setAttribute("role", role);
      });
    });
    table.classList.add("stack");
  });
})();
