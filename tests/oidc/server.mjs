// A real OpenID Connect provider (the npm `oidc-provider`) on 127.0.0.1 for the sign-in tests.
// Its development login form accepts any login and password: login "alice" signs in as alice@example.com with a
// verified e-mail; a login starting with "unverified-" gets email_verified false.
// Usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI  (prints "ready" when it listens).
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
if (!redirectUri) {
  console.error('usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: false, // the e-mail in the ID token, where Streamlit (Authlib) reads it
  async findAccount(ctx, id) {
    const name = id.replace(/^unverified-/, '');
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${name}@example.com`, email_verified: !id.startsWith('unverified-'), name };
      },
    };
  },
  cookies: { keys: ['test-only-cookie-key'] },
});
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
