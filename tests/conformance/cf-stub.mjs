// Stand-in for the workerd built-in module `cloudflare:workers`: just enough
// for @cloudflare/sandbox and @cloudflare/containers to load in Node.  The
// test only uses the route client (SandboxClient), never these classes.
export class DurableObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}
export class WorkerEntrypoint {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}
export class RpcTarget {}
export const env = {};
export const tracing = {
  enterSpan: (name, fn, ...args) => fn({ setAttribute() {}, end() {} }, ...args),
};
export default { DurableObject, WorkerEntrypoint, RpcTarget, env, tracing };
