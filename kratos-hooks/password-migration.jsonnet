// Request body for Kratos's password migration hook -> cognito-bridge (Kratos v25.4.0+).
//
// Kratos evaluates this with one top-level argument `ctx`:
//   identifier, password      what the user typed (identifier not normalised)
//   identity                  the identity being logged in (id, external_id, traits, ...);
//                             absent when Kratos has none to give
//   flow                      the login flow
//   request_headers           the login request's headers, unfiltered, as Go's
//                             http.Header: canonical names ("User-Agent",
//                             "X-Forwarded-For", "True-Client-Ip") -> arrays of strings
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

  // The leftmost address is the original client as the proxies report it.
  local firstForwarded(value) =
    if value == null then null else text(std.split(value, ',')[0]);

  local firstOf(values) =
    local known = [v for v in values if v != null];
    if std.length(known) == 0 then null else known[0];

  local identity = if present(ctx, 'identity') then ctx.identity else {};

  {
    identifier: ctx.identifier,
    password: ctx.password,
    identity_id: if present(identity, 'id') then text(identity.id) else null,
    external_id: if present(identity, 'external_id') then text(identity.external_id) else null,
    client_ip: firstOf([
      header('True-Client-Ip'),
      firstForwarded(header('X-Forwarded-For')),
      header('X-Real-Ip'),
    ]),
    user_agent: header('User-Agent'),
  }
