// Passkeys on the login and account pages. The account page's "add a
// passkey" button: options from POST data-passkey-registration +
// "/registration", navigator.credentials.create, and the response posted
// to data-passkey-registration as credential=<RegistrationResponseJSON>.
// Passkey sign-in for the login page: autofill on the login field
// (conditional mediation) and the passkey button (a modal request). The
// page works without it: the button then answers that passkeys need
// JavaScript. Options come from POST data-passkey-options (CSRF token in
// the body); the assertion is posted with the form as method=passkey and
// credential=<AuthenticationResponseJSON>.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), b = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { b[i] = bin.charCodeAt(i); }
    return b.buffer;
  }
  function bufToB64url(buf) {
    var b = new Uint8Array(buf), s = "";
    for (var i = 0; i < b.length; i++) { s += String.fromCharCode(b[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function requestOptions(pk) {
    pk.challenge = b64urlToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return pk;
  }
  function credentialJSON(c) {
    var r = c.response;
    return JSON.stringify({
      id: c.id, rawId: bufToB64url(c.rawId), type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || undefined,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      response: {
        clientDataJSON: bufToB64url(r.clientDataJSON),
        authenticatorData: bufToB64url(r.authenticatorData),
        signature: bufToB64url(r.signature),
        userHandle: r.userHandle ? bufToB64url(r.userHandle) : undefined
      }
    });
  }
  var reg = document.querySelector("form[data-passkey-registration]");
  if (reg) {
    register(reg);
  }
  var form = document.querySelector("form[data-passkey-options]");
  if (!form) {
    return;
  }
  // options fetches a challenge. The fetch is aborted with the ceremony:
  // each answer sets the one challenge cookie, and a superseded request
  // answering last would name a challenge the new ceremony did not sign.
  function options(mediation, signal) {
    var body = new URLSearchParams();
    body.set("csrf_token", form.elements["csrf_token"].value);
    body.set("mediation", mediation);
    return fetch(form.getAttribute("data-passkey-options"), {
      method: "POST", credentials: "same-origin", body: body, signal: signal
    }).then(function (res) {
      if (!res.ok) { throw new Error("options: " + res.status); }
      return res.json();
    });
  }
  var pending = null;
  function signIn(mediation) {
    if (pending) { pending.abort(); }
    var ctl = new AbortController();
    pending = ctl;
    return options(mediation, ctl.signal).then(function (o) {
      var req = { publicKey: requestOptions(o.publicKey), signal: ctl.signal };
      if (mediation) { req.mediation = mediation; }
      return navigator.credentials.get(req);
    }).then(function (c) {
      if (!c) { return; }
      var hidden = document.createElement("input");
      hidden.type = "hidden"; hidden.name = "credential"; hidden.value = credentialJSON(c);
      var method = document.createElement("input");
      method.type = "hidden"; method.name = "method"; method.value = "passkey";
      form.appendChild(hidden); form.appendChild(method);
      form.noValidate = true;
      form.submit();
    }).catch(function (e) {
      if (e && e.name === "AbortError") { return; }
      var alert = document.getElementById("passkey-error");
      if (alert && mediation !== "conditional") { alert.hidden = false; }
    });
  }
  var button = form.querySelector('button[name="method"][value="passkey"]');
  if (button) {
    button.addEventListener("click", function (ev) {
      ev.preventDefault();
      signIn("");
    });
  }
  if (PublicKeyCredential.isConditionalMediationAvailable) {
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (ok) { signIn("conditional"); }
    });
  }

  function register(reg) {
    var base = reg.getAttribute("data-passkey-registration");
    reg.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var csrf = reg.elements["csrf_token"].value;
      var body = new URLSearchParams();
      body.set("csrf_token", csrf);
      fetch(base + "/registration", { method: "POST", credentials: "same-origin", body: body })
        .then(function (res) {
          if (!res.ok) { throw new Error("options: " + res.status); }
          return res.json();
        }).then(function (o) {
          var pk = o.publicKey;
          pk.challenge = b64urlToBuf(pk.challenge);
          pk.user.id = b64urlToBuf(pk.user.id);
          (pk.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
          return navigator.credentials.create({ publicKey: pk });
        }).then(function (c) {
          var r = c.response;
          var json = JSON.stringify({
            id: c.id, rawId: bufToB64url(c.rawId), type: c.type,
            authenticatorAttachment: c.authenticatorAttachment || undefined,
            clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
            response: {
              clientDataJSON: bufToB64url(r.clientDataJSON),
              attestationObject: bufToB64url(r.attestationObject),
              transports: r.getTransports ? r.getTransports() : []
            }
          });
          var post = document.createElement("form");
          post.method = "post";
          post.action = base;
          [["csrf_token", csrf], ["credential", json]].forEach(function (kv) {
            var i = document.createElement("input");
            i.type = "hidden"; i.name = kv[0]; i.value = kv[1];
            post.appendChild(i);
          });
          document.body.appendChild(post);
          post.submit();
        }).catch(function () {
          var alert = document.getElementById("passkey-add-error");
          if (alert) { alert.hidden = false; alert.setAttribute("role", "alert"); }
        });
    });
  }
})();
