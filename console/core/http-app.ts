/**
 * The console's request layer on Fastify: every module Route registered as a Fastify route (plain
 * string paths natively; RegExp paths, and wrong methods for 405, through one catch-all route and
 * matchRoute), then per request, in this order: Host check (421), route (404/405), agent client
 * certificate (401/403), shared request limiters (429), body within the route's limit (413),
 * handler. Refusals get the console's JSON error shape, or privacyIDEA's on the validate port.
 *
 * The TLS and connection layer is not Fastify's: server.ts hands its hardened https server in
 * through `serverFactory`. Without one (tests), Fastify makes an unlistened server and
 * `app.inject()` drives the same hooks and handlers in-process.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerFactory } from 'fastify';
import { HttpError, type ApiRequest, type ApiResponse, type Route } from '../module.js';
import type { OpenConsole } from './context.js';
import { BASE_HEADERS } from './http-headers.js';
import {
  DEFAULT_MAX_BODY,
  agentFromCertificate,
  asHttpError,
  certificateHosts,
  errorBody,
  hostRefusal,
  isPlainPath,
  matchRoute,
  pathOf,
  readBody,
  requireJsonType,
  routesFor,
  tlsClientCertificate,
  unrouted,
  type AgentAuthRow,
  type ClientCertificateSource,
} from './http-request.js';
import { RateLimiter, sourceKey } from './limits.js';
import { consoleLimits } from './paths.js';
import { agentAuthLookup } from '../backbone/store.js';

/** Request limiters shared by the console's listeners, so an address has one budget whichever port it uses. */
export interface SharedLimiters {
  agent: RateLimiter;
  anonymous: RateLimiter;
}

export function createSharedLimiters(ctx: Pick<OpenConsole, 'config'>): SharedLimiters {
  const limits = consoleLimits(ctx.config);
  return { agent: new RateLimiter(limits.agentRequests, 50_000), anonymous: new RateLimiter(limits.anonymousRequests) };
}

export interface ConsoleAppOptions {
  /** 'main' (default): agents + web. 'validate': /validate/* only, privacyIDEA-shaped refusals. */
  kind?: 'main' | 'validate';
  limiters?: SharedLimiters;
  /** The hardened https server (server.ts); absent in in-process tests. */
  serverFactory?: FastifyServerFactory;
  /**
   * Where agent routes get the client certificate from. Production leaves this unset: the TLS
   * socket of the request is then the only source. Tests set it to hand in a certificate, and the
   * same enrolment/revocation check runs on it.
   */
  clientCertificate?: ClientCertificateSource;
}

/** What the checks before the body established for one request. */
interface Admitted {
  route: Route;
  params: string[];
  agentId: string | null;
  path: string;
  query: URLSearchParams;
}

const EMPTY = Buffer.alloc(0);

function send(reply: FastifyReply, r: ApiResponse): FastifyReply {
  const headers: Record<string, string | string[]> = { ...BASE_HEADERS, ...r.headers };
  let body: string | Buffer = '';
  if (r.json !== undefined) {
    body = JSON.stringify(r.json);
    headers['content-type'] ??= 'application/json; charset=utf-8';
  } else if (r.body !== undefined) body = r.body;
  return reply.code(r.status).headers(headers).send(body);
}

export function buildConsoleApp(ctx: OpenConsole, allRoutes: Route[], log: (m: string) => void, opts: ConsoleAppOptions = {}): FastifyInstance {
  const kind = opts.kind ?? 'main';
  const routes = routesFor(kind, allRoutes);
  const limiters = opts.limiters ?? createSharedLimiters(ctx);
  const clientCertificate = opts.clientCertificate ?? tlsClientCertificate;
  const allowedHosts = certificateHosts(ctx.server.certPem);
  const lookupAgent: (id: string) => AgentAuthRow | undefined = agentAuthLookup(ctx.db);
  const admitted = new WeakMap<FastifyRequest, Admitted>();

  const refuse = (reply: FastifyReply, e: HttpError) => send(reply, { status: e.status, json: errorBody(kind, e), ...(e.headers ? { headers: e.headers } : {}) });

  const app = Fastify({
    logger: false,
    ...(opts.serverFactory ? { serverFactory: opts.serverFactory } : {}),
    // A request target Fastify cannot parse is refused in our shape too.
    frameworkErrors: (_e, _request, reply) => {
      refuse(reply, new HttpError(400, 'bad_request', 'malformed request target'));
    },
  });

  function admit(request: FastifyRequest, route: Route, params: string[], path: string, query: URLSearchParams): void {
    let agentId: string | null = null;
    if (route.auth === 'agent') {
      agentId = agentFromCertificate(clientCertificate(request.raw), lookupAgent);
      limiters.agent.check(agentId, 'requests from this terminal');
    } else limiters.anonymous.check(sourceKey(request.raw.socket.remoteAddress ?? ''), 'requests from this address');
    // A declared length over the limit is refused here, before the body parser: a refusal from the
    // parser would close the connection (Fastify), one from here lets Node discard the rest and keep it.
    const limit = route.maxBody ?? DEFAULT_MAX_BODY;
    if (Number(request.headers['content-length'] ?? '0') > limit) throw new HttpError(413, 'body_too_large', `request body larger than ${limit} bytes`);
    admitted.set(request, { route, params, agentId, path, query });
  }

  // First for every request, routed or not: the Host must be a name the certificate is for.
  app.addHook('onRequest', async (request) => {
    const refused = hostRefusal(request.headers.host, allowedHosts);
    if (refused) throw refused;
    // Methods no route is registered for at all (PROPFIND, …) reach here unrouted.
    if (request.is404) throw unrouted(matchRoute(routes, request.method, pathOf(request.url).path), request.method);
  });

  // Bodies are read raw within the route's own limit, whatever the media type: routes decide
  // (ApiRequest.json() wants application/json, web forms want urlencoded).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    const limit = admitted.get(request)?.route.maxBody ?? DEFAULT_MAX_BODY;
    readBody(payload, limit).then(
      (b) => done(null, b),
      (e: Error) => done(e, undefined),
    );
  });

  async function handler(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const a = admitted.get(request);
    if (!a) throw new Error('request reached a handler without being admitted');
    const body = Buffer.isBuffer(request.body) ? request.body : EMPTY;
    const headers = request.headers;
    const apiReq: ApiRequest = {
      method: request.method,
      path: a.path,
      query: a.query,
      headers,
      body,
      remoteAddress: request.raw.socket.remoteAddress ?? '',
      agentId: a.agentId,
      params: a.params,
      json() {
        requireJsonType(headers);
        try {
          return JSON.parse(body.toString('utf8')) as unknown;
        } catch (e) {
          throw new HttpError(400, 'malformed_json', `malformed JSON: ${(e as Error).message}`);
        }
      },
    };
    return send(reply, await a.route.handle(apiReq));
  }

  // Plain paths natively (HEAD from GET by Fastify); the first of two identical routes wins, as before.
  const registered = new Set<string>();
  for (const route of routes) {
    if (!isPlainPath(route.path)) continue;
    const key = `${route.method} ${route.path}`;
    if (registered.has(key)) continue;
    registered.add(key);
    const path = route.path;
    app.route({
      method: route.method,
      url: path,
      exposeHeadRoute: route.method === 'GET',
      onRequest: async (request) => {
        const { query } = pathOf(request.url);
        admit(request, route, [], path, query);
      },
      handler,
    });
  }
  // Everything else: RegExp paths, and known paths with a method they do not have (405).
  app.route({
    method: app.supportedMethods,
    url: '/*',
    exposeHeadRoute: false,
    onRequest: async (request) => {
      const { path, query } = pathOf(request.url);
      const m = matchRoute(routes, request.method, path);
      if (m === null || m === 'method') throw unrouted(m, request.method);
      admit(request, m.route, m.params, path, query);
    },
    handler,
  });
  app.setNotFoundHandler(async (request) => {
    throw unrouted(matchRoute(routes, request.method, pathOf(request.url).path), request.method);
  });
  app.setErrorHandler(async (e, request, reply) => {
    const { error, internal } = asHttpError(e);
    if (internal) log(`internal error on ${request.method} ${pathOf(request.url).path}: ${(e as Error).stack ?? String(e)}`);
    return refuse(reply, error);
  });
  return app;
}
