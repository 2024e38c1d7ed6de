// openvirl viewer: step through episodes, zoom and click maps. Vanilla JS, no dependencies.
(function () {
  "use strict";

  // ---------------------------------------------------------------- episode stepper
  function setupStepper() {
    var bar = document.querySelector(".stepper");
    if (!bar) return;
    var total = parseInt(bar.dataset.steps, 10) || 1;
    var slider = document.getElementById("step-slider");
    var label = document.getElementById("step-label");
    var prev = document.getElementById("prev-step");
    var next = document.getElementById("next-step");
    var sections = document.querySelectorAll("section.step");
    var dots = bar.querySelectorAll(".dots .dot");

    function show(k) {
      k = Math.max(1, Math.min(total, k));
      sections.forEach(function (s) {
        s.classList.toggle("hidden", parseInt(s.dataset.step, 10) !== k);
      });
      slider.value = String(k);
      label.textContent = "step " + k + " of " + total;
      prev.classList.toggle("disabled", k === 1);
      next.classList.toggle("disabled", k === total);
      prev.setAttribute("href", "?step=" + Math.max(1, k - 1));
      next.setAttribute("href", "?step=" + Math.min(total, k + 1));
      dots.forEach(function (d, i) { d.style.outline = i + 1 === k ? "2px solid #222" : ""; });
      bar.dataset.current = String(k);
      // The map shows the agent where it answered step k: poses 0..k-1.
      document.querySelectorAll("svg.map [data-step]").forEach(function (el) {
        var s = parseInt(el.dataset.step, 10);
        el.classList.toggle("future", s > k - 1);
        if (el.classList.contains("pose")) el.classList.toggle("current", s === k - 1);
      });
      if (window.history && history.replaceState) {
        var url = new URL(window.location.href);
        url.searchParams.set("step", String(k));
        history.replaceState(null, "", url.toString());
      }
    }

    slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });
    prev.addEventListener("click", function (e) { e.preventDefault(); show(parseInt(bar.dataset.current, 10) - 1); });
    next.addEventListener("click", function (e) { e.preventDefault(); show(parseInt(bar.dataset.current, 10) + 1); });
    dots.forEach(function (d, i) { d.style.cursor = "pointer"; d.addEventListener("click", function () { show(i + 1); }); });
    document.addEventListener("keydown", function (e) {
      if (e.target && /INPUT|SELECT|TEXTAREA/.test(e.target.tagName) && e.target !== slider) return;
      if (e.key === "ArrowLeft") { e.preventDefault(); show(parseInt(bar.dataset.current, 10) - 1); }
      if (e.key === "ArrowRight") { e.preventDefault(); show(parseInt(bar.dataset.current, 10) + 1); }
    });
    show(parseInt(bar.dataset.current, 10) || 1);
  }

  // ---------------------------------------------------------------- clickable table rows
  function setupRows() {
    document.querySelectorAll("tr[data-href]").forEach(function (row) {
      row.addEventListener("click", function (e) {
        if (e.target.closest("a")) return;
        window.location.href = row.dataset.href;
      });
    });
  }

  // ---------------------------------------------------------------- maps
  function setupMap(svg) {
    var vb = svg.getAttribute("viewBox").split(/\s+/).map(Number);
    var home = vb.slice();
    var geo = (svg.dataset.geo || "").split(",").map(Number);
    var box = svg.closest(".mapbox");
    var scaled = svg.querySelectorAll(".marker, polygon.pose");
    scaled.forEach(function (el) { el.dataset.t = el.getAttribute("transform") || ""; });

    function apply() {
      svg.setAttribute("viewBox", vb.join(" "));
      var k = vb[2] / home[2];
      scaled.forEach(function (el) { el.setAttribute("transform", el.dataset.t + " scale(" + k + ")"); });
    }
    function toSvg(clientX, clientY) {
      var pt = svg.createSVGPoint();
      pt.x = clientX; pt.y = clientY;
      return pt.matrixTransform(svg.getScreenCTM().inverse());
    }
    function zoom(factor, cx, cy) {
      var w = vb[2] * factor, h = vb[3] * factor;
      if (w < 30 || w > home[2] * 4) return;
      vb = [cx - (cx - vb[0]) * factor, cy - (cy - vb[1]) * factor, w, h];
      apply();
    }
    svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      var p = toSvg(e.clientX, e.clientY);
      zoom(e.deltaY > 0 ? 1.25 : 0.8, p.x, p.y);
    }, { passive: false });

    var drag = null;
    svg.addEventListener("pointerdown", function (e) {
      drag = { x: e.clientX, y: e.clientY, vb: vb.slice(), moved: false };
      svg.setPointerCapture(e.pointerId);
    });
    svg.addEventListener("pointermove", function (e) {
      if (!drag) return;
      var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
      if (!drag.moved) return;
      var ctm = svg.getScreenCTM();
      vb = [drag.vb[0] - dx / ctm.a, drag.vb[1] - dy / ctm.d, vb[2], vb[3]];
      apply();
    });
    svg.addEventListener("pointerup", function (e) {
      var wasDrag = drag && drag.moved;
      drag = null;
      if (wasDrag || !box || box.dataset.click !== "view" || geo.length !== 6) return;
      var p = toSvg(e.clientX, e.clientY);
      var lat = geo[0] + geo[1] * p.x + geo[2] * p.y;
      var lon = geo[3] + geo[4] * p.x + geo[5] * p.y;
      var url = new URL(window.location.href);
      url.searchParams.set("lat", lat.toFixed(6));
      url.searchParams.set("lon", lon.toFixed(6));
      if (!url.searchParams.get("heading")) url.searchParams.set("heading", box.dataset.heading || "0");
      url.hash = "view";
      window.location.href = url.toString();
    });
    if (box) {
      box.querySelectorAll("[data-zoom]").forEach(function (b) {
        b.addEventListener("click", function () {
          var cx = vb[0] + vb[2] / 2, cy = vb[1] + vb[3] / 2;
          if (b.dataset.zoom === "in") zoom(0.7, cx, cy);
          else if (b.dataset.zoom === "out") zoom(1.4, cx, cy);
          else { vb = home.slice(); apply(); }
        });
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupStepper();
    setupRows();
    document.querySelectorAll("svg.map").forEach(setupMap);
    document.body.dataset.ready = "1";
  });
})();
