// A relying party built on panva's openid-client (the OpenID Certified RP library), run by
// tests/interop/test_openid_client.py against a real authsvc on loopback.
//
// Protocol, one JSON object per line:
//   stdin, first line: the job {flow, issuer, client_id, ...} (see main() below).
//   stdout: {"event": "http", ...} for every HTTP exchange the library makes (method, URL,
//           status, whether a DPoP proof went out and a DPoP-Nonce came back, the OAuth error);
//           {"event": "authorize", "url"} then one stdin line {"callback": URL} back;
//           {"event": "device", user_code, verification_uri_complete, ...} (no answer: it polls);
//           finally {"event": "result", ...} or {"event": "error", ...}.
// Everything the library does is its own default behaviour except allowInsecureRequests (the
// issuer is http on 127.0.0.1) and enableNonRepudiationChecks (ID token signatures checked
// against the JWKS too, which the library otherwise leaves to TLS).

import * as client from 'openid-client'
import { createInterface } from 'node:readline'

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

async function receive() {
  const { value, done } = await lines.next()
  if (done) throw new Error('stdin closed before the expected answer')
  return JSON.parse(value)
}

// Every request the library makes, reported as it happens (the test can wait on one).
async function tracingFetch(url, options) {
  const response = await fetch(url, options)
  const headers = new Headers(options.headers)
  const form = options.body instanceof URLSearchParams ? options.body : null
  const entry = {
    method: options.method,
    url: String(url),
    status: response.status,
    dpop: headers.has('dpop'),
    dpop_nonce: response.headers.has('dpop-nonce'),
    // How the client authenticated: a private_key_jwt assertion in the form, or Basic.
    assertion: form?.has('client_assertion') ?? false,
    basic: (headers.get('authorization') ?? '').startsWith('Basic '),
  }
  if (response.status >= 400) {
    try {
      const body = await response.clone().json()
      entry.error = body.error
    } catch {
      entry.error = null
    }
  }
  emit('http', entry)
  return response
}

async function configure(job) {
  let auth
  if (job.private_jwk) {
    const { d, ...rest } = job.private_jwk
    const key = await crypto.subtle.importKey(
      'jwk',
      { ...rest, d },
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['sign'],
    )
    auth = client.PrivateKeyJwt({ key, kid: job.private_jwk.kid })
  } else {
    auth = client.None()
  }
  const config = await client.discovery(new URL(job.issuer), job.client_id, undefined, auth, {
    execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
    [client.customFetch]: tracingFetch,
  })
  config[client.customFetch] = tracingFetch
  return config
}

async function newDPoP(config) {
  const keyPair = await client.randomDPoPKeyPair('ES256', { extractable: true })
  // The private JWK goes to the test so Python can make proofs with the same key.
  const jwk = await crypto.subtle.exportKey('jwk', keyPair.privateKey)
  return { handle: client.getDPoPHandle(config, keyPair), jwk }
}

// The library's error, as fields the test can assert on.
function describe(error) {
  return {
    name: error?.name,
    message: error?.message,
    code: error?.code,
    error: error?.error ?? error?.cause?.error,
    error_description: error?.error_description ?? error?.cause?.error_description,
    status: error?.status ?? error?.cause?.status,
  }
}

async function attempt(fn) {
  try {
    return { ok: true, value: await fn() }
  } catch (error) {
    return { ok: false, ...describe(error) }
  }
}

function tokens(response) {
  return {
    token_type: response.token_type,
    access_token: response.access_token,
    refresh_token: response.refresh_token,
    id_token: response.id_token,
    scope: response.scope,
    expires_in: response.expiresIn(),
    id_claims: response.id_token ? response.claims() : null,
  }
}

async function callResources(config, accessToken, urls, dpop) {
  const answers = []
  for (const url of urls ?? []) {
    const response = await client.fetchProtectedResource(config, accessToken, new URL(url), 'GET', undefined, undefined, {
      DPoP: dpop,
    })
    answers.push({
      url,
      status: response.status,
      www_authenticate: response.headers.get('www-authenticate'),
      body: await response.text(),
    })
  }
  return answers
}

// Authorization code + PKCE (S256), through PAR when job.par, with DPoP when job.dpop.
async function codeFlow(job) {
  const config = await configure(job)
  const dpop = job.dpop ? await newDPoP(config) : null
  const verifier = client.randomPKCECodeVerifier()
  const nonce = client.randomNonce()
  const state = client.randomState()
  const parameters = {
    redirect_uri: job.redirect_uri,
    scope: job.scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  }
  if (job.prompt) parameters.prompt = job.prompt
  const url = job.par
    ? await client.buildAuthorizationUrlWithPAR(config, parameters, { DPoP: dpop?.handle })
    : client.buildAuthorizationUrl(config, parameters)
  emit('authorize', { url: url.href })
  const { callback } = await receive()

  if (job.exchange_with_other_key) {
    // Someone holding the code but not the key the request was pushed with (RFC 9449 §10.1).
    const other = await newDPoP(config)
    const exchanged = await attempt(() =>
      client.authorizationCodeGrant(
        config,
        new URL(callback),
        { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true },
        undefined,
        { DPoP: other.handle },
      ),
    )
    return { exchange_with_other_key: exchanged.ok ? { ok: true, token_type: exchanged.value.token_type } : exchanged }
  }

  const first = await client.authorizationCodeGrant(
    config,
    new URL(callback),
    { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true },
    undefined,
    { DPoP: dpop?.handle },
  )
  const result = { tokens: tokens(first), dpop_jwk: dpop?.jwk ?? null }
  const sub = first.claims().sub
  result.userinfo = await client.fetchUserInfo(config, first.access_token, sub, { DPoP: dpop?.handle })
  result.resources = await callResources(config, first.access_token, job.resources, dpop?.handle)

  if (job.refresh) {
    const refreshed = await client.refreshTokenGrant(config, first.refresh_token, undefined, { DPoP: dpop?.handle })
    result.refreshed = tokens(refreshed)
    result.refreshed_userinfo = await client.fetchUserInfo(config, refreshed.access_token, sub, { DPoP: dpop?.handle })
    // The refresh token just issued, tried by a thief: with a key of its own, then with none.
    const thief = await newDPoP(config)
    result.refresh_with_other_key = await attempt(() =>
      client.refreshTokenGrant(config, refreshed.refresh_token, undefined, { DPoP: thief.handle }),
    )
    result.refresh_without_dpop = await attempt(() => client.refreshTokenGrant(config, refreshed.refresh_token))
    // The holder of the key still can: the failed attempts spent nothing.
    const again = await attempt(() =>
      client.refreshTokenGrant(config, refreshed.refresh_token, undefined, { DPoP: dpop?.handle }),
    )
    result.refresh_again = again.ok ? { ok: true, token_type: again.value.token_type } : again
  }

  if (job.introspect_and_revoke) {
    const active = await client.tokenIntrospection(config, first.access_token)
    await client.tokenRevocation(config, first.refresh_token)
    const afterRevocation = await client.tokenIntrospection(config, first.refresh_token)
    result.introspection = { access_token: active, revoked_refresh_token: afterRevocation }
    result.refresh_after_revocation = await attempt(() => client.refreshTokenGrant(config, first.refresh_token))
  }
  return result
}

// RFC 8628: start, show the code, poll until the user has decided.
async function deviceFlow(job) {
  const config = await configure(job)
  const dpop = job.dpop ? await newDPoP(config) : null
  const started = await client.initiateDeviceAuthorization(config, { scope: job.scope })
  emit('device', {
    user_code: started.user_code,
    verification_uri: started.verification_uri,
    verification_uri_complete: started.verification_uri_complete,
    expires_in: started.expires_in,
    interval: started.interval,
  })
  const granted = await client.pollDeviceAuthorizationGrant(config, started, undefined, { DPoP: dpop?.handle })
  const result = { tokens: tokens(granted), dpop_jwk: dpop?.jwk ?? null }
  const sub = granted.claims()?.sub ?? client.skipSubjectCheck
  result.userinfo = await client.fetchUserInfo(config, granted.access_token, sub, { DPoP: dpop?.handle })
  return result
}

async function main() {
  const job = await receive()
  const flows = { code: codeFlow, device: deviceFlow }
  try {
    emit('result', await flows[job.flow](job))
  } catch (error) {
    emit('error', { ...describe(error), stack: error?.stack })
  }
  lines.return?.()
  process.stdin.destroy()
}

await main()
