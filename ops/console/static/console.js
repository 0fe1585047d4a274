// The console's one script: actions as API calls with the CSRF header, and self-refreshing
// pages. No framework and no build step; the pages read fine without it (actions need it).
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function flash(text, isError) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = text;
  box.className = isError ? "error" : "ok";
}

// The fields of an action: data-field-NAME attributes, the form's inputs, a prompt's answer.
function fieldsOf(el) {
  const body = {};
  for (const [name, value] of Object.entries(el.dataset)) {
    if (name.startsWith("field")) {
      // data-field-http-status -> dataset.fieldHttpStatus -> body.http_status
      const field = name.slice(5).replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
      body[field.replace(/^_/, "")] = value;
    }
  }
  if (el.tagName === "FORM") {
    for (const [name, value] of new FormData(el).entries()) body[name] = value;
  }
  return body;
}

async function runAction(el) {
  if (el.dataset.confirm && !window.confirm(el.dataset.confirm)) return;
  const body = fieldsOf(el);
  if (el.dataset.prompt) {
    const answer = window.prompt(el.dataset.promptText || el.dataset.prompt);
    if (answer === null) return;
    body[el.dataset.prompt] = answer;
  }
  const problems = el.querySelector ? el.querySelector(".problems") : null;
  if (problems) problems.replaceChildren();
  let response;
  try {
    response = await fetch(el.dataset.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body),
    });
  } catch (err) {
    flash("the console did not answer: " + err, true);
    return;
  }
  const doc = await response.json().catch(() => ({}));
  if (!response.ok) {
    flash(doc.error || "HTTP " + response.status, true);
    if (problems && doc.problems) {
      for (const line of doc.problems) {
        const li = document.createElement("li");
        li.textContent = line;
        problems.appendChild(li);
      }
    }
    return;
  }
  flash("done" + (doc.action ? ": " + doc.action : "") + (doc.done ? ": " + doc.done : ""), false);
  await refresh();
}

// Reload the page's <main> in place (the same URL, rendered by the server).
async function refresh() {
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const html = await response.text();
  const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
  const main = document.getElementById("main");
  if (fresh && main) main.replaceWith(fresh);
}

document.addEventListener("click", (event) => {
  const el = event.target.closest("button[data-action]");
  if (!el || el.form) return;
  event.preventDefault();
  runAction(el);
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.dataset || !form.dataset.action) return;
  event.preventDefault();
  runAction(form);
});

document.addEventListener("DOMContentLoaded", () => {
  const main = document.getElementById("main");
  const every = main ? Number(main.dataset.refresh || 0) : 0;
  if (every > 0) {
    setInterval(() => {
      if (!document.hidden) refresh();
    }, every * 1000);
  }
});
