// A real OpenID Connect provider for the console's sign-in tests: the certified `oidc-provider`
// package (npm), with its development login pages (any login, any password). The people it
// knows are the demo operator's; JWT access tokens for the gateway's audience carry their roles
// and operator, as an operator's Keycloak would be set up to.
//
//   node provider.mjs <port> <redirect_uri>
//
// Prints "ready <issuer>" once it listens on 127.0.0.1:<port>.
import Provider from 'oidc-provider';

const [port, redirect] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const operator = 'MA2D3K7Q0';
const people = {
  'mo-wang': { name: '王监控', roles: ['monitor'] },
  'cs-chen': { name: '陈客服', roles: ['complaint_handler'] },
  visitor: { name: '访客', roles: [] },
};
const person = (id) => people[id] ?? { name: id, roles: [] };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'chargemesh-console',
      token_endpoint_auth_method: 'none',
      redirect_uris: [redirect],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
  ],
  cookies: { keys: ['chargemesh-test-cookie-key'] },
  claims: { openid: ['sub'], profile: ['name', 'roles', 'operator_id'] },
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: person(id).name, roles: person(id).roles, operator_id: operator };
      },
    };
  },
  async extraTokenClaims(ctx, token) {
    return token.accountId
      ? { roles: person(token.accountId).roles, operator_id: operator }
      : {};
  },
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:chargemesh:gateway',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'openid profile',
        audience: 'chargemesh',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 3600,
      }),
    },
  },
});
provider.listen(Number(port), '127.0.0.1', () => console.log(`ready ${issuer}`));
