// A real OpenID Connect provider for the sign-in tests: panva's certified `oidc-provider`,
// configured with one confidential test client (authorization code with PKCE, refresh tokens,
// the device-authorization grant), a `groups` claim and accounts read from a JSON file the test
// rewrites (to remove someone from a group, or remove them altogether).
//
//   node provider.js ACCOUNTS.json CLIENT_ID CLIENT_SECRET
//
// Listens on 127.0.0.1 on a port of its own choosing and prints `listening PORT` once ready.
//
// The sign-in page is the smallest one a test can drive with plain HTTP: a form with a
// `login` field (no password: the accounts file is the whole user directory). Consent is
// granted without asking, as a company's IdP does for its own applications.
//
// `POST /test/mode` with `{"mode": ...}` makes the next ID tokens the token endpoint issues
// wrong in one way, to check that Sluice refuses them: `tampered` (a claim changed after
// signing), `audience` (re-signed with this provider's own key for another audience),
// `expired` (re-signed with an expiry in the past), `none` (as issued).

import http from 'node:http';
import fs from 'node:fs';
import { URLSearchParams } from 'node:url';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const [accountsFile, clientId, clientSecret] = process.argv.slice(2);
if (!accountsFile || !clientId || !clientSecret) {
  console.error('usage: node provider.js ACCOUNTS.json CLIENT_ID CLIENT_SECRET');
  process.exit(2);
}

const accounts = () => JSON.parse(fs.readFileSync(accountsFile, 'utf8'));

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'test-1', alg: 'RS256', use: 'sig' };

let mode = 'none';
let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    // A loopback redirect on any port (RFC 8252): Sluice's port is chosen by the test.
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/ui/oidc/callback'],
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  // The ID token carries the claims its scopes ask for (Sluice reads them from it).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
  },
  ttl: {
    AccessToken: 300,
    AuthorizationCode: 60,
    DeviceCode: 300,
    Grant: 3600,
    IdToken: 300,
    Interaction: 300,
    RefreshToken: 3600,
    Session: 3600,
  },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(_ctx, sub) {
    const a = accounts()[sub];
    if (!a) return undefined;
    return {
      accountId: sub,
      claims: async () => ({
        sub,
        email: a.email,
        email_verified: true,
        preferred_username: sub,
        name: a.name ?? sub,
        groups: a.groups ?? [],
      }),
    };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
});
provider.proxy = false;

// The test's wrong ID tokens, made from the real one on its way out.
provider.use(async (ctx, next) => {
  await next();
  if (mode === 'none' || ctx.path !== '/token' || !ctx.body?.id_token) return;
  const idToken = ctx.body.id_token;
  const claims = jose.decodeJwt(idToken);
  const sign = (c) => new jose.SignJWT(c).setProtectedHeader({ alg: 'RS256', kid: jwk.kid }).sign(privateKey);
  if (mode === 'tampered') {
    const [h, , s] = idToken.split('.');
    const changed = Buffer.from(JSON.stringify({ ...claims, groups: ['admins'] })).toString('base64url');
    ctx.body = { ...ctx.body, id_token: `${h}.${changed}.${s}` };
  } else if (mode === 'audience') {
    ctx.body = { ...ctx.body, id_token: await sign({ ...claims, aud: 'another-client' }) };
  } else if (mode === 'expired') {
    const now = Math.floor(Date.now() / 1000);
    ctx.body = { ...ctx.body, id_token: await sign({ ...claims, iat: now - 3600, exp: now - 1800 }) };
  }
});

const callback = provider.callback();

const readForm = (req) => new Promise((resolve, reject) => {
  let body = '';
  req.on('data', (c) => { body += c; if (body.length > 65536) reject(new Error('too long')); });
  req.on('end', () => resolve(new URLSearchParams(body)));
  req.on('error', reject);
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function interaction(req, res, uid, post) {
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    if (details.prompt.name === 'consent') {
      // Granted without asking: this is the company's own application.
      const { details: missing, params, session } = { ...details.prompt, params: details.params, session: details.session };
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    if (!post) {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(`<!doctype html><title>Test IdP sign-in</title>
<form method="post" action="/interaction/${escape(uid)}/login">
<label>User <input name="login" autofocus></label>
<button type="submit">Sign in</button></form>`);
      return;
    }
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    if (!accounts()[login]) {
      res.statusCode = 403;
      res.setHeader('content-type', 'text/plain');
      res.end(`no such user: ${login}`);
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  } catch (e) {
    res.statusCode = 400;
    res.setHeader('content-type', 'text/plain');
    res.end(String(e));
  }
}

handler = async (req, res) => {
  const url = new URL(req.url, issuer);
  const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (m) {
    await interaction(req, res, m[1], req.method === 'POST' && m[2] === '/login');
    return;
  }
  if (url.pathname === '/test/mode' && req.method === 'POST') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      mode = JSON.parse(body).mode;
      res.end('ok');
    });
    return;
  }
  callback(req, res);
};

console.log(`listening ${port}`);
