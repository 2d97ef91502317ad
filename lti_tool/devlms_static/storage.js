// The test LMS's platform storage (1EdTech client-side OIDC): this page is the parent of the
// tool's iframe and keeps, for the tool's origin only, the values the tool puts (lti.put_data)
// in its session storage and gives them back (lti.get_data) — what Canvas does for tools whose
// cookies are blocked.
(function () {
  var tool = document.querySelector("[data-tool-origin]");
  if (!tool) return;
  var toolOrigin = tool.getAttribute("data-tool-origin");
  var prefix = "lti-storage:" + toolOrigin + ":";
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== toolOrigin || !data || typeof data !== "object") return;
    if (data.subject !== "lti.put_data" && data.subject !== "lti.get_data") return;
    var answer = { subject: data.subject + ".response", message_id: data.message_id, key: data.key };
    if (typeof data.key !== "string" || !data.key) {
      answer.error = { code: "bad_request", message: "a key is required" };
    } else if (data.subject === "lti.put_data") {
      window.sessionStorage.setItem(prefix + data.key, String(data.value));
      answer.value = data.value;
    } else {
      answer.value = window.sessionStorage.getItem(prefix + data.key);
    }
    event.source.postMessage(answer, event.origin);
  });
})();
