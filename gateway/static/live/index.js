// JupyCell index: the caller's kernels and a link to each one's live view. With API keys configured the key is
// asked for once per tab; a view is then opened through a fresh one-hour read-only link (POST view-tokens).
const KEY = "jupycell.key";
const $ = (id) => document.getElementById(id);

function headers() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function openView(kernelId) {
  if (!sessionStorage.getItem(KEY)) {
    location.href = `/kernels/${kernelId}/view`;
    return;
  }
  const response = await fetch(`/kernels/${kernelId}/view-tokens`, {
    method: "POST",
    headers: { ...headers(), "Content-Type": "application/json" },
    body: JSON.stringify({ expires_in: 3600 }),
  });
  if (!response.ok) {
    $("message").textContent = `Could not open the view: ${(await response.json()).detail}`;
    return;
  }
  location.href = (await response.json()).url;
}

async function load() {
  const response = await fetch("/kernels", { headers: headers() });
  if (response.status === 401) {
    $("login").hidden = false;
    $("message").textContent = sessionStorage.getItem(KEY) ? "That key was refused." : "";
    return;
  }
  if (!response.ok) {
    $("message").textContent = `The gateway answered ${response.status}.`;
    return;
  }
  $("login").hidden = true;
  const { kernels } = await response.json();
  const rows = kernels.map((kernel) => {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = `/kernels/${kernel.kernel_id}/view`;
    link.textContent = "live view";
    link.addEventListener("click", (event) => {
      event.preventDefault();
      openView(kernel.kernel_id);
    });
    const action = document.createElement("td");
    action.append(link);
    tr.append(
      cell(String(kernel.kernel_id)),
      cell(kernel.state),
      cell(String(kernel.cell_count)),
      cell(kernel.runtime),
      cell(new Date(kernel.created).toLocaleString()),
      cell(new Date(kernel.last_activity).toLocaleString()),
      action,
    );
    return tr;
  });
  document.querySelector("#kernels tbody").replaceChildren(...rows);
  $("kernels").hidden = false;
  $("message").textContent = kernels.length ? "" : "No kernels yet: POST /start makes one.";
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  load();
});

load();
