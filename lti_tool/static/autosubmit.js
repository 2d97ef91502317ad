// Posts the deep linking response back to the platform as soon as the page is read; the
// button stays for browsers without JavaScript.
document.querySelectorAll("form[data-autosubmit]").forEach((form) => form.submit());
