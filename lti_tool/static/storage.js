// Platform storage (1EdTech client-side OIDC): the platform keeps values for us in one of its
// frames, reached by postMessage, when the browser blocks our cookies inside its iframe.
//  - "put" (our login page): store the state and nonce, then go on to the platform's login.
//  - "check" (a launch that came without our state cookie): read them back; post the launch
//    again as checked when both are there, as refused otherwise (the server then says why).
(function () {
  var box = document.querySelector("[data-lti-storage]");
  if (!box) return;
  var mode = box.getAttribute("data-lti-storage");
  var origin = box.getAttribute("data-origin");
  var target = box.getAttribute("data-target");
  var state = box.getAttribute("data-state");
  var nonce = box.getAttribute("data-nonce");
  var host = window.parent !== window ? window.parent : window.opener;
  var frame = null;
  try {
    frame = target === "_parent" ? host : host && host.frames[target];
  } catch (error) {
    frame = null;
  }

  function ask(subject, fields) {
    return new Promise(function (resolve, reject) {
      if (!frame || !origin) return reject(new Error("no platform storage"));
      var id = "parcours-" + Math.random().toString(36).slice(2) + Date.now().toString(36);
      var timer = window.setTimeout(function () {
        window.removeEventListener("message", listen);
        reject(new Error("no answer"));
      }, 3000);
      function listen(event) {
        var data = event.data;
        if (event.origin !== origin || !data || typeof data !== "object") return;
        if (data.subject !== subject + ".response" || data.message_id !== id) return;
        window.clearTimeout(timer);
        window.removeEventListener("message", listen);
        if (data.error) reject(new Error(String(data.error.code || "error")));
        else resolve(data);
      }
      window.addEventListener("message", listen);
      var message = { subject: subject, message_id: id };
      for (var name in fields) message[name] = fields[name];
      frame.postMessage(message, origin);
    });
  }

  if (mode === "put") {
    var next = box.getAttribute("data-next");
    Promise.all([
      ask("lti.put_data", { key: "state_" + state, value: state }),
      ask("lti.put_data", { key: "nonce_" + nonce, value: nonce }),
    ])
      .catch(function () {}) // the launch then needs our cookie, as without storage
      .then(function () {
        window.location.replace(next);
      });
    return;
  }

  var form = box.querySelector("[data-lti-storage-form]");
  var verdict = form.querySelector("[data-lti-storage-verdict]");
  Promise.all([
    ask("lti.get_data", { key: "state_" + state }),
    ask("lti.get_data", { key: "nonce_" + nonce }),
  ])
    .then(function (answers) {
      return answers[0].value === state && answers[1].value === nonce;
    })
    .catch(function () {
      return false;
    })
    .then(function (found) {
      verdict.value = found ? "1" : "refused";
      form.submit();
    });
})();
