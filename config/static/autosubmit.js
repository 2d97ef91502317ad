// Posts a form marked data-autosubmit as soon as the page is read (a deep linking response,
// a SAML response of the test identity provider…); the button stays for browsers without
// JavaScript.
document.querySelectorAll("form[data-autosubmit]").forEach((form) => form.submit());
