// The studio's token and every request to its API.
//
// The token comes from the URL the studio printed (/?token=..., or #token=...), is kept in this
// origin's localStorage (one per port: two studios in one browser keep their own) and leaves the
// address bar at once. It travels only as an "Authorization: Bearer" header: never in a cookie, a
// URL or an <img src>. Images, exports and event streams are fetched with the header too.

const KEY = "simvos-studio-token";
export const NO_TOKEN = "This page has no valid token: open the URL the studio printed (http://…/?token=…).";

let token = null;

/** Takes the token out of the address bar into localStorage; -> the token to use, or null. */
export function takeToken() {
  const url = new URL(location.href);
  const hash = new URLSearchParams(url.hash.slice(1));
  const given = url.searchParams.get("token") || hash.get("token");
  if (url.searchParams.has("token") || hash.has("token")) {
    url.searchParams.delete("token");
    hash.delete("token");
    const rest = hash.toString();
    history.replaceState(null, "", url.pathname + url.search + (rest ? `#${rest}` : ""));
  }
  try {
    if (given) localStorage.setItem(KEY, given);
    token = localStorage.getItem(KEY);
  } catch (err) {
    token = given;  // storage refused (a private window's policy): this tab still works
  }
  return token;
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** fetch() of an API path with the token; -> the Response (ok), else throws an ApiError with the server's one line. */
export async function call(method, path, body, type, signal) {
  if (!token) throw new ApiError(NO_TOKEN, 401);
  const headers = { Authorization: `Bearer ${token}` };
  if (type) headers["Content-Type"] = type;
  let res;
  try {
    res = await fetch(path, { method, headers, body, signal, credentials: "omit", cache: "no-store" });
  } catch (err) {
    if (signal && signal.aborted) throw err;
    throw new ApiError("the studio does not answer (stopped or restarting?): try again in a moment", 0);
  }
  if (res.status === 401) throw new ApiError(NO_TOKEN, 401);
  if (!res.ok) {
    let text = `${res.status} ${res.statusText}`;
    try { text = (await res.json()).error || text; } catch (e) { /* not JSON: keep the status line */ }
    throw new ApiError(text, res.status);
  }
  return res;
}

/** A JSON request (body sent as JSON when given); -> the parsed answer. */
export async function json(method, path, body) {
  const res = await call(method, path, body === undefined ? undefined : JSON.stringify(body),
                         body === undefined ? undefined : "application/json");
  return res.json();
}

let listing = null;

/** GET /api/sessions, one request for the callers that ask while it is under way (the panels that
 *  refresh on the same change). */
export function sessions() {
  listing ??= json("GET", "/api/sessions").finally(() => { listing = null; });
  return listing;
}

/** An image of the API, decoded; the caller closes it when done. */
export async function bitmap(path) {
  return createImageBitmap(await (await call("GET", path)).blob());
}

/** Shows an image of the API in ``img`` through a blob URL, revoked once the image is decoded. */
export async function showImage(img, path) {
  const url = URL.createObjectURL(await (await call("GET", path)).blob());
  img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  img.addEventListener("error", () => URL.revokeObjectURL(url), { once: true });
  img.src = url;
}

/** Saves a download of the API under the name the server gives, through a blob URL; -> that name. */
export async function download(path, fallback) {
  const res = await call("GET", path);
  const blob = await res.blob();
  const name = (/filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "") || [])[1] || fallback;
  const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  return name;
}

/** The messages of a text/event-stream (each "data:" block parsed as JSON), read with fetch(). Ends
 *  when the server closes the stream; throws when it breaks. */
async function* events(path, signal) {
  const res = await call("GET", path, undefined, undefined, signal);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).replace(/^ /, ""));
        if (data.length) yield JSON.parse(data.join("\n"));
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Follows a job's event stream until it is in one of ``finished`` (the server's finished states),
 *  calling ``onState`` with each state (its errors are the caller's). A stream that breaks or ends
 *  early (the network, the studio restarting) is read again after a pause (``onDrop`` is told); a
 *  job the studio no longer knows ends as interrupted. Resolves with the last state, or null once
 *  ``signal`` is aborted. */
export async function followJob(jobId, { finished, onState, onDrop = () => {}, signal }) {
  let pause = 1000;
  while (!signal.aborted) {
    const stream = events(`/api/jobs/${encodeURIComponent(jobId)}/events`, signal);
    try {
      for (;;) {
        let next;
        try {
          next = await stream.next();
        } catch (err) {
          if (signal.aborted) return null;
          if (err.status === 404) {
            return { state: "interrupted", done: 0, total: 0, error: "the studio restarted and has no record of this job" };
          }
          if (err.status === 401 || !(err instanceof ApiError || err instanceof TypeError)) throw err;
          onDrop(err);
          break;
        }
        if (next.done) break;
        pause = 1000;
        await onState(next.value);
        if (finished.includes(next.value.state)) return next.value;
      }
    } finally {
      await stream.return();
    }
    await sleep(pause);
    pause = Math.min(2 * pause, 8000);
  }
  return null;
}
