// Request body for Kratos's password migration hook -> cognito-bridge (Kratos v25.4.0+).
//
// Kratos evaluates this with one top-level argument `ctx`:
//   identifier, password      what the user typed (identifier not normalised)
//   identity                  the identity being logged in (id, external_id, traits, ...);
//                             absent when Kratos has none to give
//   flow                      the login flow
//   request_headers           the login request's headers, unfiltered, as Go's
//                             http.Header: canonical names ("User-Agent",
//                             "X-Forwarded-For", "True-Client-Ip") -> arrays of strings;
//                             only the address headers and the user agent are passed on
//   request_method, request_url, request_cookies
//
// Every extra field is null when unknown; this file never fails on a missing key.
function(ctx)
  local present(obj, key) =
    std.type(obj) == 'object' && std.objectHas(obj, key) && obj[key] != null;

  // A non-empty string, or null.
  local text(value) =
    if std.type(value) != 'string' then null
    else
      local trimmed = std.stripChars(value, ' \t');
      if trimmed == '' then null else trimmed;

  local headers = if present(ctx, 'request_headers') then ctx.request_headers else {};

  // First value of a header, whatever case its name arrives in.
  local header(name) =
    local wanted = std.asciiLower(name);
    local keys = [k for k in std.objectFields(headers) if std.asciiLower(k) == wanted];
    if std.length(keys) == 0 then null
    else
      local value = headers[keys[0]];
      if std.type(value) == 'array' then
        (if std.length(value) == 0 then null else text(value[0]))
      else text(value);

  // The address headers, passed on as they came (every value, lower-cased names); the
  // bridge picks the client's address from them by hooks.trusted_proxies and
  // hooks.client_ip_header. Nothing else of the request (no cookie, no authorization).
  local addressHeaders = [
    'x-forwarded-for', 'true-client-ip', 'cf-connecting-ip', 'fastly-client-ip',
    'x-real-ip', 'x-client-ip', 'x-cluster-client-ip',
  ];
  local values(value) =
    if std.type(value) == 'array' then [v for v in value if std.type(v) == 'string']
    else if std.type(value) == 'string' then [value]
    else [];
  local allValues(name) = std.flattenArrays([
    values(headers[k])
    for k in std.objectFields(headers)
    if std.asciiLower(k) == name
  ]);

  local identity = if present(ctx, 'identity') then ctx.identity else {};

  {
    identifier: ctx.identifier,
    password: ctx.password,
    identity_id: if present(identity, 'id') then text(identity.id) else null,
    external_id: if present(identity, 'external_id') then text(identity.external_id) else null,
    client_headers: {
      [name]: allValues(name)
      for name in addressHeaders
      if std.length(allValues(name)) > 0
    },
    user_agent: header('User-Agent'),
  }
