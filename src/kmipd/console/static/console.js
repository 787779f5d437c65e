// kmipd web console: one module, no dependencies. Every request goes to kmipd's HTTPS API
// with the bearer token of the signed-in API key; the console has no back end of its own.
// Text from the server is only ever put in the page as text (never as HTML).

const ROLES = { Reader: 1, Writer: 2, Manager: 3 };
const APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey";
const TOKEN_KEY = "kmipd.console.token";
const DAY = 86400;
const EXPIRY_WARNING_DAYS = 30;
const METRICS_EVERY_MS = 5000; // /metrics is sampled this often while Activity is open

const session = { token: null, role: null, serviceId: null, kpInstance: null };
let leavePage = () => {};
let renders = 0; // each page rendering is numbered: tests wait for a fresh one

// --- small helpers ------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const can = (role) => ROLES[session.role] >= ROLES[role];
const view = () => document.getElementById("view");
const when = (seconds) => (seconds ? new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "never");
const short = (text, n = 16) => (text && text.length > n ? text.slice(0, n) + "…" : text || "");

function say(message, isError = false) {
  const status = document.getElementById("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, { body, form, text, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (session.token) init.headers.Authorization = `Bearer ${session.token}`;
  if (form) init.body = new URLSearchParams(form);
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const reply = await fetch(path, init);
  if (reply.status === 401 && session.token) {
    signOut("Your session ended; sign in again.");
    throw new ApiFailure(401, "signed out");
  }
  if (!reply.ok) {
    let message = `${reply.status} ${reply.statusText}`;
    try {
      const data = await reply.json();
      message = data.error?.message || data.errorMessage || data.resources?.[0]?.errorMsg || message;
    } catch (_) { /* not JSON */ }
    throw new ApiFailure(reply.status, message);
  }
  if (reply.status === 204) return null;
  return text ? reply.text() : reply.json();
}

const kpHeaders = () => ({ "Bluemix-Instance": session.kpInstance });

function download(filename, content, type = "application/x-pem-file") {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const link = h("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function confirmAction(message, label) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = message;
  document.getElementById("confirm-ok").textContent = label;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

// Runs an action from a button: errors go to the status line, never lost.
function guarded(action) {
  return async (event) => {
    const button = event?.currentTarget;
    if (button) button.disabled = true;
    try {
      await action(event);
    } catch (error) {
      if (!(error instanceof ApiFailure && error.status === 401)) say(error.message, true);
    } finally {
      if (button && button.isConnected) button.disabled = false;
    }
  };
}

async function instanceNames() {
  const data = await api("GET", "/admin/v1/instances");
  return data.instances;
}

function instancePicker(instances, selected, onChange) {
  const select = h("select", { id: "instance-picker", onchange: (e) => onChange(e.target.value) },
    instances.map((i) => h("option", { value: i.name, selected: i.name === selected }, i.name)));
  return h("label", {}, "Instance ", select);
}

// --- sign-in ------------------------------------------------------------------------------

function signInPage(message = "") {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const input = h("input", { type: "password", id: "apikey", autocomplete: "off", required: true, size: 48 });
  const form = h("form", {
    onsubmit: guarded(async (event) => {
      event.preventDefault();
      const apikey = input.value.trim();
      input.value = ""; // the API key is not kept: only the token it is exchanged for
      const reply = await fetch("/identity/token", {
        method: "POST",
        body: new URLSearchParams({ grant_type: APIKEY_GRANT, apikey }),
      });
      const data = await reply.json();
      if (!reply.ok) {
        input.focus(); // ready for another try
        throw new Error(`Sign-in refused: ${data.errorMessage || reply.status}`);
      }
      session.token = data.access_token;
      sessionStorage.setItem(TOKEN_KEY, session.token);
      await loadSession();
      say(`Signed in as ${session.serviceId} (${session.role}).`);
      const target = can("Writer") ? "#/setup" : "#/keys";
      if (location.hash === target) route();
      else location.hash = target; // the hashchange renders it
    }),
  },
  h("h1", {}, "Sign in"),
  h("p", {}, "Sign in with an API key. It is exchanged for a token that lasts one hour; the key itself is not kept in the browser."),
  h("label", { for: "apikey" }, "API key"), input, " ",
  h("button", { type: "submit", class: "primary" }, "Sign in"));
  view().replaceChildren(form);
  if (message) say(message, true);
  input.focus();
}

async function loadSession() {
  const me = await api("GET", "/admin/v1/session");
  session.role = me.role;
  session.serviceId = me.service_id;
  session.kpInstance = me.keyprotect_instance_id;
  document.getElementById("who-text").textContent = `${me.service_id} · ${me.role}`;
  document.getElementById("who").hidden = false;
  const nav = document.getElementById("nav");
  nav.replaceChildren(...PAGES.filter((p) => can(p.role)).map((p) =>
    h("a", { href: `#/${p.path}`, "data-page": p.path }, p.title)));
  nav.hidden = false;
}

function signOut(message = "") {
  session.token = session.role = session.serviceId = session.kpInstance = null;
  sessionStorage.removeItem(TOKEN_KEY);
  leavePage();
  leavePage = () => {};
  location.hash = "";
  signInPage(message);
}

// --- setup wizard -------------------------------------------------------------------------

async function setupPage(root) {
  // provider: a configured root key provider other than the built-in keyring, whose new
  // root key is made when the instance is created.
  const wizard = { rootKeyId: null, provider: null, chosen: false, instance: null, clientFingerprint: null };
  const steps = h("ol", { class: "steps" });
  root.append(h("h1", {}, "Set up a key provider for vCenter"), steps);
  const step = (title) => {
    const body = h("section", { class: "card" }, h("h2", {}, title));
    steps.append(h("li", {}, body));
    return body;
  };

  // 1. Root key
  const rootStep = step("Root key");
  const rootKeys = (await api("GET", "/api/v2/keys?extractable=false&state=1", { headers: kpHeaders() })).resources || [];
  // Other providers are those the node checks (root_key_provider.NAME).
  const providers = Object.keys(thisNode((await api("GET", "/admin/v1/nodes")).nodes)?.checks || {})
    .filter((check) => check.startsWith("root_key_provider.")).map((check) => check.split(".").slice(1).join("."));
  const pick = h("select", { id: "root-key-pick" },
    h("option", { value: "" }, "— create a new root key (built-in keyring) —"),
    providers.map((provider) => h("option", { value: `provider:${provider}` }, `— create a new root key in provider ${provider} —`)),
    rootKeys.map((k) => h("option", { value: k.id }, `${k.name} (${k.id})`)));
  const newName = h("input", { type: "text", id: "root-key-name", value: "vSphere root key", size: 30 });
  const rootResult = h("p", { id: "root-key-result", class: "mono" });
  rootStep.append(
    h("div", { class: "row" }, h("label", { for: "root-key-pick" }, "Use root key"), pick),
    h("div", { class: "row" }, h("label", { for: "root-key-name" }, "Name of a new root key"), newName),
    h("button", {
      type: "button", id: "root-key-next", class: "primary",
      onclick: guarded(async () => {
        wizard.provider = null;
        if (pick.value.startsWith("provider:")) {
          wizard.provider = pick.value.slice("provider:".length);
          wizard.rootKeyId = null;
        } else if (pick.value) wizard.rootKeyId = pick.value;
        else {
          const made = await api("POST", "/api/v2/keys", {
            headers: kpHeaders(),
            body: { metadata: { collectionType: "application/vnd.ibm.kms.key+json", collectionTotal: 1 },
              resources: [{ type: "application/vnd.ibm.kms.key+json", name: newName.value, extractable: false }] },
          });
          wizard.rootKeyId = made.resources[0].id;
        }
        wizard.chosen = true;
        rootResult.textContent = wizard.provider
          ? `Root key: a new one in provider ${wizard.provider}, made with the instance`
          : `Root key: ${wizard.rootKeyId}`;
        say("Root key chosen.");
        document.getElementById("instance-name").focus();
      }),
    }, "Use this root key"), rootResult);

  // 2. Instance
  const instanceStep = step("KMIP instance");
  const name = h("input", { type: "text", id: "instance-name", size: 30, pattern: "[A-Za-z0-9][A-Za-z0-9._-]*" });
  const instanceResult = h("p", { id: "instance-result" });
  instanceStep.append(
    h("div", { class: "row" }, h("label", { for: "instance-name" }, "Instance name"), name,
      h("button", {
        type: "button", id: "instance-create", class: "primary",
        onclick: guarded(async () => {
          if (!wizard.chosen) throw new Error("Choose a root key first (step 1).");
          const body = { name: name.value.trim() };
          if (wizard.rootKeyId) body.root_key_id = wizard.rootKeyId;
          if (wizard.provider) body.provider = wizard.provider;
          const made = await api("POST", "/admin/v1/instances", { body });
          wizard.instance = made.name;
          wizard.rootKeyId = made.root_key_id;
          instanceResult.textContent = `Instance ${made.name} created, bound to root key ${made.root_key_id}.`;
          say(`Instance ${made.name} created.`);
          await fillSummary();
        }),
      }, "Create instance")),
    instanceResult);

  // 3. vCenter's client certificate
  const certStep = step("vCenter client certificate");
  const certResult = h("div", { id: "cert-result" });
  const needInstance = () => {
    if (!wizard.instance) throw new Error("Create the instance first (step 2).");
    return encodeURIComponent(wizard.instance);
  };
  const allowed = (record) => {
    wizard.clientFingerprint = record.fingerprint;
    say(`Certificate ${record.subject} allowed on ${wizard.instance}.`);
    fillSummary().catch((error) => say(error.message, true));
  };
  const pem = h("textarea", { id: "cert-pem", rows: 5, placeholder: "-----BEGIN CERTIFICATE-----" });
  const csrFile = h("input", { type: "file", id: "csr-file", accept: ".csr,.pem,.txt" });
  const cn = h("input", { type: "text", id: "cert-cn", value: "vcenter", size: 30 });
  certStep.append(
    h("fieldset", {}, h("legend", {}, "Paste vCenter's certificate (PEM)"),
      h("label", { for: "cert-pem" }, "Certificate"), pem,
      h("button", {
        type: "button", id: "cert-upload",
        onclick: guarded(async () => {
          allowed(await api("POST", `/admin/v1/instances/${needInstance()}/certificates`, { body: { pem: pem.value } }));
          certResult.replaceChildren(h("p", {}, "Certificate allowed."));
        }),
      }, "Allow this certificate")),
    h("fieldset", {}, h("legend", {}, "Upload vCenter's CSR, download the signed certificate"),
      h("label", { for: "csr-file" }, "CSR file"), csrFile,
      h("button", {
        type: "button", id: "csr-sign",
        onclick: guarded(async () => {
          const file = csrFile.files[0];
          if (!file) throw new Error("Choose the CSR file vCenter generated.");
          const signed = await api("POST", `/admin/v1/instances/${needInstance()}/certificates/sign`, { body: { csr: await file.text() } });
          allowed(signed);
          certResult.replaceChildren(h("button", { type: "button", id: "download-signed", onclick: () => download(`${wizard.instance}-vcenter.pem`, signed.pem) }, "Download the signed certificate"));
          download(`${wizard.instance}-vcenter.pem`, signed.pem);
        }),
      }, "Sign")),
    h("fieldset", {}, h("legend", {}, "Issue a certificate and private key for vCenter"),
      h("label", { for: "cert-cn" }, "Common name"), cn,
      h("button", {
        type: "button", id: "cert-issue",
        onclick: guarded(async () => {
          const issued = await api("POST", `/admin/v1/instances/${needInstance()}/certificates/issue`, { body: { common_name: cn.value } });
          allowed(issued.certificate);
          const keyPem = issued.private_key_pem; // shown once: only in these download buttons
          certResult.replaceChildren(
            h("p", {}, "Upload both files in vCenter (KMS certificate and private key). The private key is not kept by kmipd: download it now."),
            h("button", { type: "button", id: "download-cert", onclick: () => download(`${wizard.instance}-client.pem`, issued.certificate.pem) }, "Download certificate"), " ",
            h("button", { type: "button", id: "download-key", onclick: () => download(`${wizard.instance}-client-key.pem`, keyPem) }, "Download private key"));
        }),
      }, "Issue")),
    certResult);

  // 4. The KMS CA certificate
  const caStep = step("Make vCenter trust the KMS");
  const ca = await api("GET", "/admin/v1/ca");
  caStep.append(
    h("p", {}, "Upload kmipd's CA certificate in vCenter (Make vCenter trust the KMS)."),
    h("p", {}, "SHA-256 fingerprint: ", h("span", { class: "mono", id: "ca-fingerprint" }, ca.fingerprint)),
    h("button", { type: "button", id: "download-ca", onclick: () => download("kmipd-ca.pem", ca.pem) }, "Download KMS CA certificate"));

  // 5. Endpoints and summary
  const endStep = step("Endpoints to enter in vCenter");
  const summary = h("textarea", { id: "summary", rows: 8, readonly: true });
  const list = h("ul", { id: "endpoints" });
  endStep.append(list, h("label", { for: "summary" }, "Summary"), summary,
    h("div", { class: "row" },
      h("button", { type: "button", id: "summary-refresh", onclick: guarded(() => fillSummary()) }, "Refresh summary"),
      h("button", {
        type: "button", id: "summary-copy",
        onclick: guarded(async () => {
          summary.select();
          await navigator.clipboard.writeText(summary.value).catch(() => document.execCommand("copy"));
          say("Summary copied.");
        }),
      }, "Copy summary")));
  async function fillSummary() {
    // Every node registered in the database: vCenter's key provider lists them all.
    const { nodes } = await api("GET", "/admin/v1/nodes");
    const first = (n) => n.kmip_endpoints[0] || `port ${n.kmip_port}`;
    list.replaceChildren(...nodes.map((n) => h("li", { "data-node": n.id }, `${n.name}${n.this ? " (this node)" : ""}: `, h("span", { class: "mono" }, first(n)),
      n.kmip_endpoints.length > 1 ? h("span", { class: "muted" }, ` (also valid: ${n.kmip_endpoints.slice(1).join(", ")})`) : "",
      n.state === "unreachable" ? h("span", { class: "bad" }, ` (${nodeState(n)})`) : "")));
    summary.value = [
      `Key provider instance: ${wizard.instance || "(not created yet)"}`,
      `Root key: ${wizard.rootKeyId || "(not chosen yet)"}`,
      ...nodes.map((n) => `KMS ${n.name}: ${first(n)}${n.state === "unreachable" ? ` (${nodeState(n)})` : ""}`),
      `KMS CA SHA-256: ${ca.fingerprint}`,
      `vCenter client certificate SHA-256: ${wizard.clientFingerprint || "(not allowed yet)"}`,
    ].join("\n");
  }
  await fillSummary();
}

// --- key inventory ------------------------------------------------------------------------

const KEY_COLUMNS = [
  ["vm", "VM or host", (k) => k.tags["x-Name"] || ""],
  ["component", "Component", (k) => k.tags["x-Component"] || ""],
  ["uid", "VMware key ID", (k) => k.uid],
  ["state", "State", (k) => k.state],
  ["created", "Created", (k) => k.created],
  ["fetched", "Last fetched", (k) => k.last_fetched || 0],
  ["by", "By client", (k) => k.by || ""],
];

async function allKeys(instance) {
  const keys = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await api("GET", `/admin/v1/instances/${encodeURIComponent(instance)}/keys?limit=1000&offset=${offset}`);
    keys.push(...page.keys);
    if (keys.length >= page.total || page.keys.length === 0) return keys;
  }
}

async function keysPage(root, params) {
  const instances = await instanceNames();
  if (!instances.length) {
    root.append(h("h1", {}, "Key inventory"), h("p", {}, "No instance yet."));
    return;
  }
  const instance = params.get("instance") || instances[0].name;
  const table = { keys: [], sort: "created", descending: true, filter: "", stale: null };
  const q = encodeURIComponent(instance);
  const certificates = (await api("GET", `/admin/v1/instances/${q}/certificates`)).certificates;
  const subjects = Object.fromEntries(certificates.map((c) => [c.fingerprint, c.subject]));
  const withClient = (k) => ({ ...k, by: k.last_fetched_by ? subjects[k.last_fetched_by] || short(k.last_fetched_by) : "" });
  const search = h("input", { type: "search", id: "key-search", placeholder: "VM, component, key ID or state", size: 36,
    oninput: (e) => { table.filter = e.target.value.toLowerCase(); draw(); } });
  const days = h("input", { type: "number", id: "stale-days", min: 0, max: 3650, value: 30, size: 5 });
  const heading = h("h2", { id: "keys-heading" });
  const tbody = h("tbody");
  const thead = h("thead");
  const deleteButton = can("Manager") ? h("button", { type: "button", id: "delete-selected", class: "danger", onclick: guarded(deleteSelected) }, "Delete selected") : null;
  root.append(
    h("h1", {}, "Key inventory"),
    h("div", { class: "row" },
      instancePicker(instances, instance, (name) => { location.hash = `#/keys?instance=${encodeURIComponent(name)}`; }),
      h("label", { for: "key-search" }, "Search"), search),
    h("div", { class: "row" },
      h("label", { for: "stale-days" }, "Not fetched for"), days, " days ",
      h("button", { type: "button", id: "show-stale", onclick: guarded(showStale) }, "Show keys not fetched"),
      h("button", { type: "button", id: "show-all", onclick: guarded(showAll) }, "Show all keys"),
      deleteButton),
    heading, h("table", { id: "keys" }, thead, tbody));

  async function showAll() {
    table.stale = null;
    table.keys = (await allKeys(instance)).map(withClient);
    draw();
  }
  async function showStale() {
    const data = await api("GET", `/admin/v1/instances/${q}/stale-keys?days=${Number(days.value) || 0}`);
    table.stale = data.days;
    table.keys = data.keys.map(withClient);
    draw();
  }
  function selected() {
    return [...tbody.querySelectorAll("input[type=checkbox]:checked")].map((box) => table.keys.find((k) => k.uid === box.value));
  }
  async function deleteSelected() {
    const keys = selected();
    if (!keys.length) throw new Error("Select the keys to delete first.");
    const vms = [...new Set(keys.map((k) => k.tags["x-Name"] || `key ${short(k.uid, 12)}`))];
    const noun = keys.length === 1 ? "1 key" : `${keys.length} keys`;
    const ok = await confirmAction(
      `Delete ${noun} of instance ${instance}, used by: ${vms.join(", ")}? Their material is destroyed for good; vCenter can no longer unlock what they protect.`,
      `Delete ${noun}`);
    if (!ok) return;
    try {
      for (const key of keys) await api("DELETE", `/admin/v1/instances/${q}/keys/${encodeURIComponent(key.uid)}`);
      say(`Deleted ${noun} (${vms.join(", ")}).`);
    } finally {
      await (table.stale === null ? showAll() : showStale()); // also after a failure midway
    }
  }
  function draw() {
    heading.textContent = table.stale === null ? `Keys of ${instance}` : `Keys of ${instance} not fetched for ${table.stale} days`;
    thead.replaceChildren(h("tr", {}, can("Manager") ? h("th", {}, h("span", { class: "skip" }, "Select")) : null,
      KEY_COLUMNS.map(([id, title]) => h("th", { "aria-sort": table.sort === id ? (table.descending ? "descending" : "ascending") : "none" },
        h("button", { type: "button", "data-sort": id, onclick: () => { table.descending = table.sort === id ? !table.descending : false; table.sort = id; draw(); } }, title)))));
    const value = KEY_COLUMNS.find(([id]) => id === table.sort)[2];
    const rows = table.keys
      .filter((k) => !table.filter || KEY_COLUMNS.some(([, , get]) => String(get(k)).toLowerCase().includes(table.filter)))
      .sort((a, b) => (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0) * (table.descending ? -1 : 1));
    tbody.replaceChildren(...rows.map((k) => h("tr", { "data-uid": k.uid },
      can("Manager") ? h("td", {}, h("input", { type: "checkbox", value: k.uid, "aria-label": `Select key ${k.uid} of ${k.tags["x-Name"] || "no VM"}`, disabled: k.state === "Destroyed" })) : null,
      h("td", {}, k.tags["x-Name"] || ""), h("td", {}, k.tags["x-Component"] || ""),
      h("td", { class: "mono" }, k.uid), h("td", {}, k.state), h("td", {}, when(k.created)),
      h("td", {}, when(k.last_fetched)), h("td", { class: "mono" }, k.by))));
    say(`${rows.length} of ${table.keys.length} keys shown.`);
  }
  await showAll();
}

// --- root keys ----------------------------------------------------------------------------

async function rootKeysPage(root) {
  root.append(h("h1", {}, "Root keys"));
  const instances = await instanceNames();
  if (!instances.length) root.append(h("p", {}, "No instance yet."));
  for (const instance of instances) root.append(await rootKeyCard(instance));
}

// ``lastState``: the state a disable/enable/delete just reported, for providers whose key
// state the API does not list (only the built-in keyring's is read back).
async function rootKeyCard(instance, lastState = null) {
  const q = encodeURIComponent(instance.name);
  const card = h("section", { class: "card", "data-instance": instance.name, "aria-labelledby": `rk-${instance.name}` });
  const progress = h("progress", { max: 100, value: 0, id: `rewrap-progress-${instance.name}` });
  const progressText = h("span", { "aria-live": "polite", id: `rewrap-text-${instance.name}` });
  let metadata = null;
  let versions = [];
  if (instance.provider === "builtin") {
    const id = encodeURIComponent(instance.root_key_id);
    metadata = (await api("GET", `/api/v2/keys/${id}/metadata`, { headers: kpHeaders() })).resources[0];
    versions = (await api("GET", `/api/v2/keys/${id}/versions?allKeyStates=true`, { headers: kpHeaders() })).resources;
  }
  const kpState = { 1: "active", 2: "disabled", 3: "deactivated", 5: "deleted" };
  const state = metadata ? kpState[metadata.state] || String(metadata.state) : lastState || "unknown";
  const refresh = async (reported = null) => {
    card.replaceWith(await rootKeyCard(await api("GET", `/admin/v1/instances/${q}`), reported));
  };
  async function showRewrap() {
    const s = await api("GET", `/admin/v1/instances/${q}/rewrap`);
    progress.value = s.state === "idle" ? 100 : s.percent;
    progressText.textContent = s.state === "running" || s.objects_remaining > 0
      ? `Re-wrap running: ${s.percent}% (${s.objects_remaining} objects left)`
      : s.current_version === null
        ? "No key yet: nothing to re-wrap."
        : `Re-wrap ${s.state === "idle" ? "not needed" : "done"}: every object is on wrapping key version ${s.current_version}.`;
    return s;
  }
  async function watchRewrap() {
    for (;;) {
      const s = await showRewrap();
      if (s.state !== "running" && s.objects_remaining === 0) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  const action = (verb, label, cls, confirmText) => h("button", {
    type: "button", class: cls, "data-action": verb,
    onclick: guarded(async () => {
      if (confirmText && !(await confirmAction(confirmText, label))) return;
      const path = verb === "delete" ? `/admin/v1/instances/${q}/root-key` : `/admin/v1/instances/${q}/root-key/${verb}`;
      const result = await api(verb === "delete" ? "DELETE" : "POST", path);
      say(`Root key of ${instance.name} is now ${result.state}.`);
      await refresh(result.state);
    }),
  }, label);
  const buttons = [];
  if (can("Writer") && state !== "deleted" && state !== "disabled") {
    buttons.push(h("button", {
      type: "button", class: "primary", "data-action": "rotate",
      onclick: guarded(async () => {
        const rotated = await api("POST", `/admin/v1/instances/${q}/rotate`);
        say(`Rotated: root key version ${rotated.root_key_version}; re-wrapping ${instance.name}.`);
        await watchRewrap();
        say(`Re-wrap of ${instance.name} finished.`);
        await refresh();
      }),
    }, "Rotate now"));
  }
  if (can("Manager")) {
    // A state kmipd cannot read back (another provider): both are offered.
    if (state === "disabled" || state === "unknown") buttons.push(action("enable", "Enable", ""));
    if (state !== "disabled" && state !== "deleted") buttons.push(action("disable", "Disable", ""));
    if (state !== "deleted") {
      buttons.push(action("delete", "Delete root key", "danger",
        `Delete the root key of instance ${instance.name}? This crypto-shreds ${instance.keys} keys of instance ${instance.name}: vCenter can no longer fetch any of them.` +
        (instance.provider === "builtin" ? " It can be restored within the restore window." : " The provider may destroy it for good.")));
    }
    if (metadata?.restoreAllowed) {
      buttons.push(h("button", {
        type: "button", "data-action": "restore",
        onclick: guarded(async () => {
          await api("POST", `/api/v2/keys/${encodeURIComponent(instance.root_key_id)}/restore`, { headers: kpHeaders() });
          say(`Root key of ${instance.name} restored.`);
          await refresh();
        }),
      }, "Restore"));
    }
  }
  const schedule = can("Writer")
    ? (() => {
      const input = h("input", { type: "number", min: 0, step: "any", id: `rotation-days-${instance.name}`, value: instance.rotation_days ?? "", size: 6 });
      return h("div", { class: "row" }, h("label", { for: input.id }, "Rotate every (days, empty: never)"), input,
        h("button", { type: "button", "data-action": "schedule", onclick: guarded(async () => {
          const days = input.value === "" ? null : Number(input.value);
          await api("PATCH", `/admin/v1/instances/${q}`, { body: { rotation_days: days } });
          say(days ? `${instance.name} rotates every ${days} days.` : `${instance.name} rotates only on demand.`);
        }) }, "Save schedule"));
    })()
    : h("p", {}, `Rotation schedule: ${instance.rotation_days ? `every ${instance.rotation_days} days` : "on demand only"}`);
  card.append(...[
    h("h2", { id: `rk-${instance.name}` }, `Instance ${instance.name}`),
    h("p", {}, "Root key ", h("span", { class: "mono" }, instance.root_key_id), ` in provider ${instance.provider}: `,
      h("strong", { class: state === "active" ? "good" : "bad", "data-field": "state" }, state),
      ` · ${instance.keys} keys · last rotated ${when(instance.last_rotated)}`),
    metadata?.deleted ? h("p", { class: "warn" }, `Deleted ${metadata.deletionDate}; restorable until ${metadata.restoreExpirationDate}.`) : null,
    versions.length ? h("p", {}, `Versions (newest first): `, versions.map((v, i) => `${versions.length - i}: ${v.creationDate}`).join(" · ")) : null,
    schedule,
    h("div", { class: "row" }, progress, progressText),
    h("div", { class: "row" }, buttons),
  ].filter(Boolean));
  await showRewrap().catch((e) => { progressText.textContent = e.message; });
  return card;
}

// --- certificates -------------------------------------------------------------------------

async function certificatesPage(root) {
  root.append(h("h1", {}, "Allowed certificates"));
  const now = Date.now() / 1000;
  for (const instance of await instanceNames()) {
    const q = encodeURIComponent(instance.name);
    const { certificates } = await api("GET", `/admin/v1/instances/${q}/certificates`);
    const rows = certificates.map((c) => {
      const daysLeft = Math.floor((c.not_after - now) / DAY);
      const soon = daysLeft < EXPIRY_WARNING_DAYS;
      return h("tr", { class: soon ? "warn" : null, "data-fingerprint": c.fingerprint },
        h("td", {}, c.subject), h("td", {}, c.kind === "ca" ? "trusted CA" : "pinned"),
        h("td", { class: "mono" }, short(c.fingerprint, 20)),
        h("td", {}, when(c.not_after), soon ? h("strong", { class: "bad" }, daysLeft < 0 ? " expired" : ` expires in ${daysLeft} days`) : null),
        h("td", {}, when(c.last_seen)),
        can("Manager") ? h("td", {}, h("button", {
          type: "button", class: "danger",
          onclick: guarded(async () => {
            if (!(await confirmAction(`Stop allowing ${c.subject} on instance ${instance.name}? Its connections are cut at once.`, "Delete certificate"))) return;
            await api("DELETE", `/admin/v1/instances/${q}/certificates/${c.fingerprint}`);
            say(`Certificate ${c.subject} deleted.`);
            route();
          }),
        }, "Delete")) : null);
    });
    root.append(h("section", { class: "card" }, h("h2", {}, `Instance ${instance.name}`),
      rows.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Subject", "Kind", "SHA-256", "Expires", "Last seen"].map((t) => h("th", {}, t)), can("Manager") ? h("th", {}, "Action") : null)), h("tbody", {}, rows))
        : h("p", {}, "No certificate allowed: no client can connect to this instance.")));
  }
}

// --- activity -----------------------------------------------------------------------------

function parseMetrics(text) {
  let operations = 0;
  let handshakes = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("kmipd_kmip_batch_items_total")) operations += Number(line.split(" ").pop());
    else if (line.startsWith("kmipd_kmip_handshake_failures_total")) handshakes += Number(line.split(" ").pop());
  }
  return { operations, handshakes };
}

function drawChart(svg, samples) {
  // Per-minute increase of each counter over the last 15 minutes, from /metrics samples.
  const minutes = 15;
  const now = Math.floor(Date.now() / 60000);
  const bins = Array.from({ length: minutes }, () => ({ operations: 0, handshakes: 0 }));
  for (let i = 1; i < samples.length; i++) {
    const bin = minutes - 1 - (now - Math.floor(samples[i].at / 60000));
    if (bin < 0 || bin >= minutes) continue;
    bins[bin].operations += Math.max(0, samples[i].operations - samples[i - 1].operations);
    bins[bin].handshakes += Math.max(0, samples[i].handshakes - samples[i - 1].handshakes);
  }
  const top = Math.max(1, ...bins.map((b) => b.operations), ...bins.map((b) => b.handshakes));
  const width = 24;
  svg.replaceChildren(...bins.flatMap((b, i) => {
    const ops = (b.operations / top) * 100;
    const bad = (b.handshakes / top) * 100;
    const rect = (x, height, fill, label) => {
      const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      for (const [k, v] of Object.entries({ x, y: 110 - height, width: width / 2 - 1, height, fill })) r.setAttribute(k, v);
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = label;
      r.append(title);
      return r;
    };
    return [rect(i * width + 4, ops, "#0a5bd8", `${b.operations} KMIP operations`), rect(i * width + 4 + width / 2, bad, "#b42318", `${b.handshakes} failed handshakes`)];
  }));
  return bins;
}

async function activityPage(root) {
  const instances = await instanceNames();
  const field = (id, label, control) => h("label", { for: id }, label, " ", control);
  const instance = h("select", { id: "f-instance" }, h("option", { value: "" }, "any"), instances.map((i) => h("option", { value: i.name }, i.name)));
  const channel = h("select", { id: "f-channel" }, ["", "kmip", "https"].map((c) => h("option", { value: c }, c || "any")));
  const result = h("select", { id: "f-result" }, ["", "success", "failure"].map((c) => h("option", { value: c }, c || "any")));
  const action = h("input", { type: "text", id: "f-action", size: 14, placeholder: "e.g. Get" });
  const actor = h("input", { type: "text", id: "f-actor", size: 18 });
  const tbody = h("tbody");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 364 112");
  svg.setAttribute("width", "364");
  svg.setAttribute("height", "112");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", "chart-caption");
  const caption = h("p", { id: "chart-caption", "aria-live": "polite" });
  root.append(h("h1", {}, "Activity"),
    h("h2", {}, "KMIP operations and failed handshakes per minute (this node, sampled from /metrics while this page is open)"),
    svg, caption,
    h("h2", {}, "Audit trail"),
    h("form", { class: "row", onsubmit: guarded(async (e) => { e.preventDefault(); await load(); }) },
      field("f-instance", "Instance", instance), field("f-channel", "Channel", channel), field("f-result", "Result", result),
      field("f-action", "Action", action), field("f-actor", "Actor", actor), h("button", { type: "submit", class: "primary" }, "Filter")),
    h("table", { id: "audit" }, h("thead", {}, h("tr", {}, ["Time", "Actor", "Channel", "Action", "Instance", "Object", "Result", "Reason"].map((t) => h("th", {}, t)))), tbody));
  async function load() {
    const query = new URLSearchParams({ limit: "200" });
    for (const [name, control] of [["instance", instance], ["channel", channel], ["result", result], ["action", action], ["actor", actor]]) {
      if (control.value.trim()) query.set(name, control.value.trim());
    }
    const data = await api("GET", `/admin/v1/audit?${query}`);
    tbody.replaceChildren(...data.records.map((r) => h("tr", { class: r.result === "failure" ? "warn" : null },
      h("td", {}, when(r.time)), h("td", { class: "mono" }, short(r.actor, 20)), h("td", {}, r.channel), h("td", {}, r.action),
      h("td", {}, r.instance || ""), h("td", { class: "mono" }, short(r.uid, 20)), h("td", {}, r.result), h("td", {}, r.reason || ""))));
    say(`${data.records.length} of ${data.total} audit records shown.`);
  }
  const samples = [];
  async function sample() {
    samples.push({ at: Date.now(), ...parseMetrics(await api("GET", "/metrics", { text: true })) });
    while (samples.length > 200) samples.shift();
    const bins = drawChart(svg, samples);
    const total = (field) => bins.reduce((sum, bin) => sum + bin[field], 0);
    const now = samples.at(-1);
    caption.textContent = `Blue: KMIP operations, red: failed TLS handshakes, per minute. Last 15 minutes: ${total("operations")} KMIP operations, ${total("handshakes")} failed handshakes. Since the node started: ${now.operations} operations, ${now.handshakes} failed handshakes.`;
  }
  await Promise.all([load(), sample()]);
  const timer = setInterval(() => sample().catch((e) => say(e.message, true)), METRICS_EVERY_MS);
  return () => clearInterval(timer);
}

// --- health -------------------------------------------------------------------------------

// The node that answered, from GET /admin/v1/nodes (every node of the cluster).
const thisNode = (nodes) => nodes.find((n) => n.this) || nodes[0];
const nodeState = (n) => (n.state === "unreachable" ? `unreachable (last seen ${when(n.last_seen)})` : n.state);

async function healthPage(root) {
  const { nodes, discovery } = await api("GET", "/admin/v1/nodes");
  root.append(h("h1", {}, "Health"));
  for (const node of nodes) {
    const checked = node.this ? `checked ${when(node.checked)}` : `checked by that node ${when(node.checked)}`;
    root.append(h("section", { class: "card", "data-node": node.id, "data-state": node.state },
      h("h2", {}, `Node ${node.id}${node.this ? " (this node)" : ""}: `, h("span", { class: node.ready ? "good" : "bad" }, nodeState(node))),
      h("p", {}, `KMIP: ${node.kmip_endpoints.join(", ")} · HTTPS port ${node.https_port} · kmipd ${node.version} · started ${when(node.started)} · ${checked}`),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Part"), h("th", {}, "State seen by the server"))),
        h("tbody", {}, Object.entries(node.checks).map(([part, state]) => h("tr", { "data-check": part },
          h("td", {}, part === "store" ? "database" : part.replace("root_key_provider", "root key provider")),
          h("td", { class: state === "ok" ? "good" : "bad" }, state)))))));
  }
  if (discovery === "this-node") root.append(h("p", { class: "bad" }, "The node registry in the database could not be read: only the node that served this page is listed."));
}

// --- routing ------------------------------------------------------------------------------

const PAGES = [
  { path: "setup", title: "Setup", role: "Writer", render: setupPage },
  { path: "keys", title: "Key inventory", role: "Reader", render: keysPage },
  { path: "root-keys", title: "Root keys", role: "Reader", render: rootKeysPage },
  { path: "certificates", title: "Certificates", role: "Reader", render: certificatesPage },
  { path: "activity", title: "Activity", role: "Reader", render: activityPage },
  { path: "health", title: "Health", role: "Reader", render: healthPage },
];

async function route() {
  if (!session.token) return signInPage();
  leavePage();
  leavePage = () => {};
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const page = PAGES.find((p) => p.path === path && can(p.role)) || PAGES.find((p) => can(p.role));
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === page.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  renders += 1;
  const root = h("div", { "data-page": page.path, "data-render": renders, "aria-busy": "true" });
  view().replaceChildren(root);
  document.title = `${page.title} · kmipd console`;
  try {
    const leave = await page.render(root, new URLSearchParams(query || ""));
    if (typeof leave === "function") leavePage = leave;
  } catch (error) {
    if (!(error instanceof ApiFailure && error.status === 401)) say(error.message, true);
  } finally {
    root.setAttribute("aria-busy", "false");
  }
}

async function start() {
  document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
  // The skip link moves the focus to the page; it must not change the hash (the route).
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    view().focus();
  });
  window.addEventListener("hashchange", () => { if (session.token) route(); });
  // The link of the page on show reloads it (the hash does not change, so no hashchange).
  document.getElementById("nav").addEventListener("click", (event) => {
    if (event.target.closest("a")?.getAttribute("href") === location.hash) route();
  });
  session.token = sessionStorage.getItem(TOKEN_KEY);
  if (!session.token) return signInPage();
  try {
    await loadSession();
  } catch (_) {
    return signOut("Sign in again.");
  }
  await route();
}

start();
