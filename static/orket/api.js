/* The one fetch wrapper of Orket's pages: same-origin credentials, JSON in and out, and the CSRF
 * header on every write. Pages differ only in how they word a refusal, so each passes its own
 * `describe(data, status)`; the error it throws carries `status` and `data` as well.
 *
 *   import { requestJSON } from "../api.js";
 *   requestJSON("POST", url, body, describe).then((data) => ...);   // data is null for 204
 */
import { cookie } from "./dom.js";

export function request(method, url, body) {
  const options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    options.headers["X-CSRFToken"] = cookie("csrftoken");
  }
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  return fetch(url, options);
}

/* The JSON of a response; `fallback` when it has none or it is not JSON, null for 204. */
export function responseData(response, fallback) {
  if (response.status === 204) {
    return Promise.resolve(null);
  }
  return response.json().catch(function () {
    return fallback === undefined ? {} : fallback;
  });
}

export function defaultDescribe(data, status) {
  return (data && data.detail) || "The server answered " + status + ".";
}

export function requestJSON(method, url, body, describe) {
  return request(method, url, body).then(function (response) {
    return responseData(response).then(function (data) {
      if (!response.ok) {
        const error = new Error((describe || defaultDescribe)(data, response.status, response));
        error.status = response.status;
        error.data = data;
        throw error;
      }
      return data;
    });
  });
}

export function getJSON(url, describe) {
  return requestJSON("GET", url, undefined, describe);
}
