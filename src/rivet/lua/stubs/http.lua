---@meta http
-- Rivet: the `http` module: HTTP requests made by the runner (not inside a
-- container), under the runner's [http] policy: allowed/denied hosts (private and
-- loopback addresses are denied by default), a per-job rate limit, a response size
-- cap, a redirect limit and timeouts. A non-2xx status is a normal result unless
-- `check = true`.

---@class HttpOptions
---@field headers? table<string, string|number> Request headers (Host, Content-Length, Transfer-Encoding, Connection, Upgrade and TE are set by Rivet).
---@field query? table<string, string|number|boolean|(string|number|boolean)[]> Query parameters, added to those in the URL; a list repeats the parameter.
---@field body? string Raw request body (no Content-Type is added: set one in `headers`).
---@field json? any Value sent as a JSON body, with `Content-Type: application/json` unless set; not together with `body`.
---@field timeout? number Seconds for the whole call, redirects included (default: the policy's `default_timeout`, 30 s; at most `max_timeout`).
---@field check? boolean Raise an error when the status is not 2xx (default false).
---@field follow_redirects? boolean Follow 3xx redirects, each target checked by the policy (default true).

---@class HttpRequestOptions: HttpOptions
---@field method? "GET"|"POST"|"PUT"|"PATCH"|"DELETE"|"HEAD"|"OPTIONS" HTTP method (default "GET"; any case).
---@field url string Absolute http:// or https:// URL.

---@class HttpResponse
---@field status integer HTTP status code.
---@field ok boolean Whether the status is 2xx.
---@field headers table<string, string> Response headers, names lower-cased; repeated headers joined with ", ".
---@field body string Response body as text (decoded by its charset, else UTF-8).
---@field json? any The decoded body when the response Content-Type is JSON and the body parses; nil otherwise.
---@field url string The final URL, after redirects.

---@class rivet.http
http = {}

---Send a GET request.
---@param url string
---@param opts? HttpOptions
---@return HttpResponse
function http.get(url, opts) end

---Send a POST request.
---@param url string
---@param opts? HttpOptions
---@return HttpResponse
function http.post(url, opts) end

---Send a PUT request.
---@param url string
---@param opts? HttpOptions
---@return HttpResponse
function http.put(url, opts) end

---Send a PATCH request.
---@param url string
---@param opts? HttpOptions
---@return HttpResponse
function http.patch(url, opts) end

---Send a DELETE request.
---@param url string
---@param opts? HttpOptions
---@return HttpResponse
function http.delete(url, opts) end

---Send a request described by one table (method, url and the options of the verbs).
---@param opts HttpRequestOptions
---@return HttpResponse
function http.request(opts) end
