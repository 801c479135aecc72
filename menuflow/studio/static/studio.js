// menuflow studio: a WhatsApp-like chat against flowsvc's sandbox (POST /api/turn), one
// conversation kept here between turns, plus a version's preview (GET /api/preview).
"use strict";

const $ = (id) => document.getElementById(id);
let templates = [];
let conversation = null;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) {
    const details = (body.violations || []).map((v) => `${v[0]}: ${v[1]}`).join("\n");
    throw new Error(`${body.error}: ${body.message}${details ? "\n" + details : ""}`);
  }
  return body;
}

function say(text, who) {
  $("chat").appendChild(element("div", `bubble ${who}`, text));
  $("chat").scrollTop = $("chat").scrollHeight;
}

function choose(id, title) {
  $("list-sheet").hidden = true;
  say(title, "customer");
  turn({ selection: { id, title } });
}

// A Graph API body as WhatsApp draws it: its bubble, then its reply buttons or list button.
function draw(body, into, live) {
  const bubble = element("div", "bubble bot");
  if (body.type === "text") {
    bubble.textContent = body.text.body;
    into.appendChild(bubble);
    return;
  }
  const interactive = body.interactive;
  if (interactive.header) bubble.appendChild(element("div", "header", interactive.header.text));
  bubble.appendChild(element("div", "body", interactive.body.text));
  if (interactive.footer) bubble.appendChild(element("div", "footer", interactive.footer.text));
  into.appendChild(bubble);
  const choices = element("div", "choices");
  const action = interactive.action;
  if (interactive.type === "button") {
    for (const button of action.buttons) {
      const tap = element("button", "reply", button.reply.title);
      tap.disabled = !live;
      tap.onclick = () => choose(button.reply.id, button.reply.title);
      choices.appendChild(tap);
    }
  } else {
    const open = element("button", "list-button", `☰ ${action.button}`);
    open.disabled = !live;
    open.onclick = () => showList(action);
    choices.appendChild(open);
  }
  into.appendChild(choices);
}

function showList(action) {
  const sheet = $("list-sheet");
  sheet.replaceChildren();
  for (const section of action.sections) {
    sheet.appendChild(element("h3", "", section.title));
    for (const row of section.rows) {
      const pick = element("button", "row", row.title);
      pick.dataset.id = row.id;
      if (row.description) pick.appendChild(element("span", "description", row.description));
      pick.onclick = () => choose(row.id, row.title);
      sheet.appendChild(pick);
    }
  }
  sheet.hidden = false;
}

function show(response) {
  for (const old of document.querySelectorAll("#chat .choices button")) old.disabled = true;
  for (const body of response.messages || []) draw(body, $("chat"), true);
  $("chat").scrollTop = $("chat").scrollHeight;
  conversation = response.conversation || null;
  $("outcome").textContent = (response.outcome || "").replace("OUTCOME_", "").toLowerCase();
  $("flow").textContent = conversation ? `${conversation.flow} v${conversation.version}` : "(ended)";
  $("step").textContent = conversation ? conversation.step : "-";
  $("context").textContent = JSON.stringify(conversation ? conversation.context || {} : {}, null, 2);
  if (response.call) showCall(response.call);
  if (response.result_reference) {
    $("result").textContent = `${response.result_reference}\n${JSON.stringify(response.result, null, 2)}`;
  }
}

// A sandbox runs no call: the bot's call is shown, and its result is given here.
function showCall(call) {
  const body = call.body_json ? ` ${call.body_json}` : "";
  $("chat").appendChild(
    element("div", "bubble bot call", `(the bot calls ${call.method} ${call.endpoint}${call.path}${body})`),
  );
  const choices = element("div", "choices");
  const results = [
    ["Answer…", null],
    ["Time out", { timeout: true }],
    ["Fail", { failed: true }],
  ];
  for (const [title, fixed] of results) {
    const button = element("button", "reply call-result", title);
    button.onclick = () => {
      let result = fixed;
      if (result === null) {
        const typed = window.prompt("What the API answered (JSON)", '{"status": 200, "json": {}}');
        if (typed === null) return;
        try {
          result = JSON.parse(typed);
        } catch (error) {
          $("chat").appendChild(element("div", "bubble bot error", `not JSON: ${error.message}`));
          return;
        }
      }
      say(`(call result: ${JSON.stringify(result)})`, "customer");
      turn({ call_result: result });
    };
    choices.appendChild(button);
  }
  $("chat").appendChild(choices);
}

async function turn(input) {
  const request = {
    template: $("template").value,
    version: Number($("version").value),
    conversation,
    ...input,
  };
  try {
    show(await api("/api/turn", { method: "POST", body: JSON.stringify(request) }));
  } catch (error) {
    $("chat").appendChild(element("div", "bubble bot error", error.message));
  }
}

function fillVersions() {
  const template = templates.find((t) => t.name === $("template").value);
  $("version").replaceChildren();
  for (const v of template ? template.versions : []) {
    const label = `${v.version}${v.live ? " (live)" : v.draft ? " (draft)" : ""}`;
    const option = element("option", "", label);
    option.value = String(v.version);
    $("version").appendChild(option);
  }
}

// One step's flow stats as a line: entered, where they went, how many stopped there, and the
// median time spent there.
function stepCounts(step) {
  const parts = [`entered ${step.entered || 0}`];
  for (const exit of step.exits || []) parts.push(`→ ${exit.next_step} ${exit.count}`);
  for (const [key, label] of [["completed", "completed"], ["stopped", "stopped here"],
    ["cancelled", "cancelled"], ["expired", "expired"], ["ended", "ended"],
    ["handed_off", "handed off"]]) {
    if (step[key]) parts.push(`${label} ${step[key]}`);
  }
  // A protobuf JSON Duration ("42.500s"): whole seconds are enough at a glance.
  if (step.median_time) parts.push(`median ${Math.round(parseFloat(step.median_time))}s`);
  return parts.join(" · ");
}

async function preview() {
  const name = encodeURIComponent($("template").value);
  const shown = await api(`/api/preview?name=${name}&version=${$("version").value}`);
  const pane = $("preview");
  pane.replaceChildren(element("h2", "", `${shown.template.name} version ${shown.template.version}`));
  const stats = shown.stats || {};
  const counted = new Map((stats.steps || []).map((s) => [s.step, s]));
  pane.appendChild(element("p", "stats",
    `Last 7 days: ${stats.started || 0} started, ${stats.completed || 0} completed`));
  for (const step of shown.steps) {
    const box = element("div", "step");
    box.appendChild(element("h3", "", step.step));
    box.appendChild(element("div", "stats", stepCounts(counted.get(step.step) || {})));
    for (const body of step.messages || []) draw(body, box, false);
    const leads = element("div", "leads");
    for (const choice of step.choices || []) {
      leads.appendChild(element("div", "", `${choice.title} → ${choice.target || "(stays)"}`));
    }
    if (step.next_step) leads.appendChild(element("div", "", `any other answer → ${step.next_step}`));
    if (step.end_conversation) leads.appendChild(element("div", "", "(the conversation ends here)"));
    box.appendChild(leads);
    pane.appendChild(box);
  }
  pane.hidden = false;
}

async function main() {
  templates = await api("/api/templates");
  for (const template of templates) {
    const option = element("option", "", template.name);
    option.value = template.name;
    $("template").appendChild(option);
  }
  $("template").onchange = fillVersions;
  fillVersions();
  $("start").onclick = () => {
    conversation = null;
    $("chat").replaceChildren();
    $("result").textContent = "-";
    turn({});
  };
  $("show-preview").onclick = preview;
  $("composer").onsubmit = (event) => {
    event.preventDefault();
    const text = $("message").value.trim();
    if (!text) return;
    $("message").value = "";
    say(text, "customer");
    turn({ text });
  };
  document.body.dataset.ready = "true";
}

main();
