/** Token operations, written once for both transports (like operations.ts for VMs). */
import type { ApiToken } from '../core/api-token.js';
import type { ApiTokens } from './auth/tokens.js';

export class TokenOperations {
  constructor(private readonly tokens: ApiTokens) {}

  createToken(req: { scope?: unknown; name?: unknown }): { token: ApiToken; secret: string } {
    return this.tokens.create(req);
  }

  listTokens(): { tokens: ApiToken[] } {
    return { tokens: this.tokens.list() };
  }

  revokeToken(req: { id?: unknown }): ApiToken {
    return this.tokens.revoke(req.id);
  }
}
