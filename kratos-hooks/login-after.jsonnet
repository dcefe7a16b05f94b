// Request body for Kratos's login-after web_hook -> cognito-bridge POST /hooks/login-after
// (selfservice.flows.login.after.password.hooks, Kratos v1.3.x and newer).
//
// Kratos evaluates this with one top-level argument `ctx`: flow, request_headers (an
// allow-list), request_method, request_url, request_cookies, identity (the identity that
// just logged in) and session. `identity` never carries credentials or metadata_admin, and
// no hook ever sees a password: only the ids and the traits are passed on.
//
// The bridge finds the user by `identity_id` (what `cognito-bridge import` stored), else by
// `external_id` (the Cognito sub; Kratos v25.4.0+ identities only). Without an identity
// there is nothing to record: `error "cancel"` makes Kratos skip the call.
function(ctx)
  local present(obj, key) =
    std.type(obj) == 'object' && std.objectHas(obj, key) && obj[key] != null;
  local text(obj, key) =
    if present(obj, key) && std.type(obj[key]) == 'string' && obj[key] != '' then obj[key]
    else null;
  local identity = if present(ctx, 'identity') then ctx.identity else {};

  if text(identity, 'id') == null then error 'cancel'
  else {
    identity_id: text(identity, 'id'),
    external_id: text(identity, 'external_id'),
    traits: if present(identity, 'traits') && std.type(identity.traits) == 'object'
    then identity.traits else null,
  }
