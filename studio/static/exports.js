// Exports: one button per kind the server offers (/api/info "exports"), fetched with the token and
// saved through a blob URL; a failed export shows its error instead of saving it as a file.
import * as api from "./api.js";
import { state, $, element, guard, say } from "./state.js";

async function download(kind) {
  say(`exporting ${kind}…`);
  const name = await api.download(`/api/sessions/${state.session.id}/export?format=${encodeURIComponent(kind)}`, `export.${kind}`);
  say(`exported ${name}`);
}

export function buildExports(kinds) {
  $("exports").replaceChildren(...kinds.map((kind) => {
    const b = element("button", { className: "link", textContent: kind });
    b.onclick = guard(() => download(kind));
    return b;
  }));
}
