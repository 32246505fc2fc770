// node-oidc-provider configured like authsvc's benchmarked token endpoint, for benchmarks/run.py.
//
// Client credentials with client_secret_basic; JWT access tokens through resource indicators
// (a request without `resource` gets the default resource, so it still gets a JWT); one
// signing key of PEER_ALG, made once in the primary and handed to every worker, so the
// workers of node:cluster sign alike. Everything is read from the environment:
//
//   PEER_PORT, PEER_WORKERS, PEER_ALG (RS256 | ES256 | EdDSA), PEER_CLIENT_ID,
//   PEER_CLIENT_SECRET, PEER_SCOPE, PEER_AUDIENCE
//
// run.py copies this file next to the npm-installed package and starts it there; the
// primary answers nothing itself, it only keeps PEER_WORKERS workers on the shared port.

import cluster from 'node:cluster';
import crypto from 'node:crypto';

const env = process.env;
const port = Number(env.PEER_PORT);
const workers = Number(env.PEER_WORKERS);
const alg = env.PEER_ALG;

function signingJwk() {
  const kinds = {
    RS256: ['rsa', { modulusLength: 2048 }],
    ES256: ['ec', { namedCurve: 'P-256' }],
    EdDSA: ['ed25519', {}],
  };
  if (!kinds[alg]) throw new Error(`PEER_ALG must be one of ${Object.keys(kinds).join(', ')}`);
  const [type, options] = kinds[alg];
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `bench-${alg}` };
}

async function serve() {
  const { default: Provider } = await import('oidc-provider');
  const audience = env.PEER_AUDIENCE;
  const scope = env.PEER_SCOPE;
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [
      {
        client_id: env.PEER_CLIENT_ID,
        client_secret: env.PEER_CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope,
      },
    ],
    // The default (RS256) would need an RSA key in the ring, which only the RS256 run has.
    clientDefaults: { id_token_signed_response_alg: alg },
    jwks: { keys: [JSON.parse(env.PEER_JWK)] },
    scopes: [scope],
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== audience) throw new Error(`unknown resource ${resource}`);
          return {
            scope,
            audience,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
  });
  provider.on('server_error', (_ctx, error) => console.error('server_error', error));
  provider.listen(port, '127.0.0.1');
}

if (cluster.isPrimary) {
  const jwk = JSON.stringify(signingJwk());
  for (let i = 0; i < workers; i += 1) cluster.fork({ PEER_JWK: jwk });
  cluster.on('exit', (worker, code) => {
    console.error(`worker ${worker.process.pid} exited with ${code}`);
    process.exit(1);
  });
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      for (const worker of Object.values(cluster.workers)) worker.kill();
      process.exit(0);
    });
  }
} else {
  await serve();
}
