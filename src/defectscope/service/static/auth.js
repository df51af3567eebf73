/* The token and JSON calls shared by the service's pages (dashboard, labelling studio).
   Reads need a token unless the service serves public reads; the token is asked for once, kept
   in localStorage (one for every page), and sent as a bearer token with every call. */
"use strict";
const $ = id => document.getElementById(id);
const tokenInput = $("token");
tokenInput.value = localStorage.getItem("defectscope-token") || "";

/* Call ``reload`` when the person enters another token (a blur that fires "change" without a
   new token reloads nothing, so a page's loaded state is kept). */
function onTokenChange(reload) {
  let used = tokenInput.value;
  tokenInput.addEventListener("change", () => {
    if (tokenInput.value === used) return;
    used = tokenInput.value;
    localStorage.setItem("defectscope-token", tokenInput.value);
    reload();
  });
}

/* When a read is refused, say so once, next to the token field, instead of leaving grey panels. */
function tokenNeeded(needed) {
  $("token-needed").hidden = !needed;
  if (needed) tokenInput.classList.add("needed"); else tokenInput.classList.remove("needed");
}

function headers(json) {
  const h = json ? { "Content-Type": "application/json" } : {};
  if (tokenInput.value) h["Authorization"] = "Bearer " + tokenInput.value;
  return h;
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ headers: headers(options && options.body) }, options || {}));
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) tokenNeeded(true);
  if (!response.ok) throw new Error(body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : response.statusText);
  return body;
}
