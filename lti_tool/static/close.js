// Dynamic registration is over: tell the LMS page that opened us (a window or an iframe).
(window.opener || window.parent).postMessage({ subject: "org.imsglobal.lti.close" }, "*");
