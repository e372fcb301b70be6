// davgate account pages: "Copy" buttons for the shown-once password, the
// server URL and the user name. Everything works without this file; it only
// reveals the buttons (html.js) and wires them up. No inline handlers, so
// the CSP can forbid inline script.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  var live = null;
  function announce(text) {
    if (!live) {
      live = document.createElement("div");
      live.setAttribute("aria-live", "polite");
      live.setAttribute("role", "status");
      // Hidden by a class from style.css: inline styles would break the CSP.
      live.className = "sr-only";
      document.body.appendChild(live);
    }
    live.textContent = "";
    // A fresh text node after a tick makes screen readers repeat the message.
    setTimeout(function () { live.textContent = text; }, 50);
  }

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    return sel;
  }

  function fallbackCopy(el) {
    var sel = selectText(el);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    if (ok) sel.removeAllRanges();
    return ok; // when it fails the text stays selected for the user to copy
  }

  function copied(button, label) {
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = "Copied";
    announce(label + " copied to the clipboard");
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () {
      button.textContent = button.dataset.label;
    }, 2000);
  }

  function failed(label) {
    announce(label + " is selected: copy it with your device's copy command");
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var el = document.getElementById(button.getAttribute("data-copy"));
    if (!el) return;
    event.preventDefault();
    var text = el.textContent.trim();
    var label = labelFor(el);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(button, label); },
        function () { if (fallbackCopy(el)) copied(button, label); else failed(label); }
      );
    } else if (fallbackCopy(el)) {
      copied(button, label);
    } else {
      failed(label);
    }
  });

  // "Server", "User name" from the row's <dt>, else "Password".
  function labelFor(el) {
    var dd = el.closest("dd");
    var dt = dd && dd.previousElementSibling;
    if (dt && dt.tagName === "DT") return dt.textContent.trim();
    return el.id === "app-password" ? "Password" : "Text";
  }
})();
