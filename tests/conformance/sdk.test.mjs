// Conformance test: drives sandpit's container API through the REAL published
// client, @cloudflare/sandbox@0.12.10 (SandboxClient), exactly as the SDK's
// Durable Object would.  The route contract is docs/sdk-contract.md.
//
// Run it with ./run, or:  node --import ./register.mjs sdk.test.mjs
//
// Target:
//   SANDPIT_CONFORMANCE_BASEURL   if set, the client talks to this URL as is
//                                 (e.g. http://HOST:PORT/v1/sandboxes/ID);
//   otherwise a sandpit-monitor is started from $SANDPIT_BIN on temporary
//   directories, and the client reaches its unix socket through a dumb
//   TCP-to-unix byte relay (no HTTP parsing) on 127.0.0.1.
//   SANDPIT_CONFORMANCE_WORKSPACE the directory to create test files under
//                                 (default: the monitor's workspace for the
//                                 default sandbox, else a new session's pwd)
//   SANDPIT_CONFORMANCE_HEADERS   JSON object of extra request headers (the
//                                 client's defaultHeaders), e.g. for auth
//   SANDPIT_CONFORMANCE_KEEP=1    keep the temporary directory (and log)
//   SANDPIT_CONFORMANCE_TIMEOUT   global time limit in seconds (default 120)
//   SANDPIT_CONFORMANCE_NODE      node inside the target, for the port-watch
//                                 test server (default: this node for an own
//                                 monitor, else "node")
//
// Output: one line per check, then "N passed, N failed" alone on a line.
// Exit status 1 if any check failed.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { SandboxClient, collectFile, parseSSEStream, streamFile } from '@cloudflare/sandbox';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.SANDPIT_BIN || path.join(here, '..', '..', 'bin');
const GLOBAL_TIMEOUT_S = Number(process.env.SANDPIT_CONFORMANCE_TIMEOUT) || 120;
const RUN = `${process.pid.toString(36)}${Date.now().toString(36)}`; // unique per run

// ---------------------------------------------------------------- runner

let passed = 0;
let failed = 0;
let finished = false;

function out(line) {
  process.stdout.write(line + '\n');
}

class Failure extends Error {}

function fail(msg) {
  throw new Failure(msg);
}

function show(v) {
  let s;
  try {
    s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? String(x) : x));
  } catch {
    s = String(v);
  }
  if (s === undefined) s = String(v);
  return s.length > 300 ? s.slice(0, 300) + '…' : s;
}

function eq(what, got, want) {
  if (got !== want) fail(`${what}: got ${show(got)}, want ${show(want)}`);
}

function ok(what, cond, detail) {
  if (!cond) fail(detail === undefined ? what : `${what} (${show(detail)})`);
}

function errText(e) {
  if (e instanceof Failure) return e.message;
  if (e && typeof e === 'object') {
    const parts = [`${e.name || 'Error'}: ${e.message}`];
    try {
      if (e.code !== undefined && typeof e.code !== 'function') parts.push(`code=${e.code}`);
      if (e.httpStatus !== undefined) parts.push(`httpStatus=${e.httpStatus}`);
    } catch {
      /* a getter that throws (e.g. context missing) */
    }
    return parts.join(' ');
  }
  return String(e);
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Failure(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

// One check: a name and an async body; an exception is a failure.  Each body
// has its own time limit, so one hanging route cannot stop the others.
async function check(name, fn, ms = 20000) {
  if (finished) return;
  try {
    await withTimeout(Promise.resolve().then(fn), ms, 'timeout');
    if (finished) return;
    passed++;
    out(`  ok   ${name}`);
  } catch (e) {
    if (finished) return;
    failed++;
    out(`  FAIL ${name}: ${errText(e)}`);
  }
}

function section(name) {
  if (!finished) out(`== ${name}`);
}

// Expects fn() to reject, and returns the error.
async function rejects(fn, what) {
  try {
    const v = await fn();
    fail(`${what}: expected an error, got ${show(v)}`);
  } catch (e) {
    if (e instanceof Failure) throw e;
    return e;
  }
}

// The error's code/name read without letting a throwing getter escape.
function errCode(e) {
  try {
    return e.code;
  } catch (x) {
    return `<code getter threw ${x.message}>`;
  }
}

function expectError(e, { name, code, status }) {
  if (code !== undefined) eq('err.code', errCode(e), code);
  if (name !== undefined) eq('err.name', e.name, name);
  if (status !== undefined) eq('err.httpStatus', e.httpStatus, status);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, ms, what, interval = 100) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(interval);
  }
  fail(`${what}: not within ${ms} ms (last: ${show(last)})`);
}

// Reads an SSE stream with the package's own parser until the server closes
// it (closed: true) or `ms` passes (closed: false, stream cancelled), or
// `stopAt(event)` is true (closed: undefined, stream cancelled).
async function readEvents(stream, ms, stopAt) {
  const events = [];
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), ms);
  try {
    for await (const ev of parseSSEStream(stream, ac.signal)) {
      events.push(ev);
      if (stopAt && stopAt(ev)) return { events, closed: undefined };
    }
    return { events, closed: true };
  } catch (e) {
    if (ac.signal.aborted) return { events, closed: false };
    throw e;
  } finally {
    clearTimeout(t);
  }
}

const types = (events) => events.map((e) => e && e.type);
const joined = (events, type) =>
  events
    .filter((e) => e.type === type)
    .map((e) => e.data)
    .join('');

// ---------------------------------------------------------------- target

let monitor = null; // { child, tmp, sock, ws, log, exited }
let relay = null;
const startedPids = []; // processes the test started in its own monitor

function unixGet(sock, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: sock, path: p, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

async function startMonitor() {
  const exe = path.join(BIN, 'sandpit-monitor');
  if (!fs.existsSync(exe)) throw new Error(`no monitor binary at ${exe} (build it, or set SANDPIT_BIN)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-conf-'));
  // The monitor runs each sandbox as its own Unix user: they must be able
  // to reach their workspaces below this directory.
  fs.chmodSync(tmp, 0o755);
  const sock = path.join(tmp, 'monitor.sock');
  const data = path.join(tmp, 'data');
  const ws = path.join(tmp, 'workspace');
  fs.mkdirSync(ws, { recursive: true });
  const log = path.join(tmp, 'monitor.log');
  const fd = fs.openSync(log, 'a');
  const child = spawn(exe, ['--socket', sock, '--data', data, '--workspace', ws], {
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  const m = { child, tmp, sock, ws, log, exited: null };
  monitor = m;
  child.on('exit', (code, sig) => {
    m.exited = sig || code;
  });
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if (monitor.exited !== null) throw new Error(`monitor exited (${monitor.exited}): ${tail(log)}`);
    try {
      if ((await unixGet(sock, '/api/ping')) === 200) return;
    } catch {
      /* not up yet */
    }
    await sleep(25);
  }
  throw new Error(`monitor did not answer on ${sock}: ${tail(log)}`);
}

function tail(file, n = 2000) {
  try {
    const s = fs.readFileSync(file, 'utf8');
    return s.length <= n ? s : s.slice(s.indexOf('\n', s.length - n) + 1);
  } catch {
    return '';
  }
}

// TCP 127.0.0.1:PORT -> unix socket, byte for byte, one unix connection per
// TCP connection.  Deliberately no HTTP awareness: the monitor's own HTTP
// handling (keep-alive, chunking, SSE close) is what gets tested.  Half-closes
// are passed through (allowHalfOpen), an error on one side destroys the other.
function startRelay(sock) {
  const conns = new Set();
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    const u = net.connect({ path: sock, allowHalfOpen: true });
    conns.add(c).add(u);
    c.pipe(u);
    u.pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
    c.on('close', () => {
      u.destroy();
      conns.delete(c);
    });
    u.on('close', () => conns.delete(u));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      relay = { server, conns, port: server.address().port };
      resolve(relay);
    });
  });
}

async function stopAll() {
  if (relay) {
    for (const c of relay.conns) c.destroy();
    relay.server.close();
    relay = null;
  }
  if (monitor) {
    const m = monitor;
    monitor = null;
    const crashed = m.exited !== null;
    if (crashed && !finished) {
      failed++;
      out(`  FAIL the monitor exited during the run (${m.exited}); its log ends with:`);
      out(tail(m.log, 1500).replace(/^/gm, '    | '));
    }
    if (!crashed) {
      const gone = new Promise((r) => m.child.once('exit', r));
      m.child.kill('SIGTERM');
      const t = setTimeout(() => m.child.kill('SIGKILL'), 10000);
      await Promise.race([gone, sleep(12000)]);
      clearTimeout(t);
    }
    if (crashed) reapStarted();
    if (process.env.SANDPIT_CONFORMANCE_KEEP === '1') out(`(kept ${m.tmp})`);
    else fs.rmSync(m.tmp, { recursive: true, force: true });
  }
}

// After the own monitor is gone, nothing it started may outlive the test
// (a monitor that crashed leaves its children behind).
function reapStarted() {
  for (const pid of startedPids.splice(0)) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

function summary() {
  out(`${passed} passed, ${failed} failed`);
}

// ---------------------------------------------------------------- the checks

async function main() {
  let baseUrl = process.env.SANDPIT_CONFORMANCE_BASEURL;
  let target;
  if (baseUrl) {
    baseUrl = baseUrl.replace(/\/+$/, '');
    target = baseUrl;
  } else {
    await startMonitor();
    await startRelay(monitor.sock);
    baseUrl = `http://127.0.0.1:${relay.port}`;
    target = `sandpit-monitor ${path.join(BIN, 'sandpit-monitor')} via relay ${baseUrl} -> ${monitor.sock}`;
  }
  out(`conformance: @cloudflare/sandbox SandboxClient against ${target}`);

  // retryTimeoutMs small: a (wrong) 503 then surfaces as an error at once
  // instead of the client's ~2 minutes of retries.
  const defaultHeaders = process.env.SANDPIT_CONFORMANCE_HEADERS
    ? JSON.parse(process.env.SANDPIT_CONFORMANCE_HEADERS)
    : undefined;
  const client = new SandboxClient({ baseUrl, retryTimeoutMs: 1000, defaultHeaders });
  const sid = (name) => `conf-${name}-${RUN}`;

  // ---- utils
  section('utils');
  await check('ping() returns "pong"', async () => {
    eq('ping()', await client.utils.ping(), 'pong');
  });
  await check('getCommands() returns a non-empty array of strings', async () => {
    const cmds = await client.utils.getCommands();
    ok('an array', Array.isArray(cmds), cmds);
    ok('non-empty', cmds.length > 0, cmds);
    ok('of strings', cmds.every((c) => typeof c === 'string'), cmds);
  });
  await check('getVersion() returns a version (not "unknown", which means the route failed)', async () => {
    const v = await client.utils.getVersion();
    ok('a string', typeof v === 'string' && v.length > 0, v);
    ok('not "unknown"', v !== 'unknown', v);
  });

  // ---- commands
  section('commands');
  const cs = sid('cmd');
  await check('execute("echo hi") -> stdout "hi\\n", exitCode 0, success true', async () => {
    const r = await client.commands.execute('echo hi', cs);
    eq('stdout', r.stdout, 'hi\n');
    eq('stderr', r.stderr, '');
    eq('exitCode', r.exitCode, 0);
    eq('success', r.success, true);
    eq('command', r.command, 'echo hi');
    ok('timestamp is a string', typeof r.timestamp === 'string', r.timestamp);
  });
  await check('a non-zero exit is a result (success false, exitCode 3), not an exception', async () => {
    // "(exit 3)": a plain "exit" would end the session's persistent shell.
    const r = await client.commands.execute('(exit 3)', cs);
    eq('success', r.success, false);
    eq('exitCode', r.exitCode, 3);
  });
  await check('stderr is captured apart from stdout', async () => {
    const r = await client.commands.execute('echo out; echo oops >&2', cs);
    eq('stdout', r.stdout, 'out\n');
    eq('stderr', r.stderr, 'oops\n');
  });
  await check('env applies to that call only', async () => {
    const r = await client.commands.execute('echo "[$CONF_FOO]"', cs, { env: { CONF_FOO: 'bar baz' } });
    eq('with env', r.stdout, '[bar baz]\n');
    const r2 = await client.commands.execute('echo "[$CONF_FOO]"', cs);
    eq('next call', r2.stdout, '[]\n');
  });
  await check('cwd applies to that call only', async () => {
    const before = (await client.commands.execute('pwd', cs)).stdout;
    const r = await client.commands.execute('pwd', cs, { cwd: '/tmp' });
    eq('with cwd', r.stdout, '/tmp\n');
    const r2 = await client.commands.execute('pwd', cs);
    eq('next call', r2.stdout, before);
  });
  await check('no sessionId means the "default" session', async () => {
    await client.commands.execute(`export CONF_DEFAULT=${RUN}`, undefined);
    const r = await client.commands.execute('echo "$CONF_DEFAULT"', 'default');
    eq('stdout', r.stdout, `${RUN}\n`);
  });
  await check('empty command -> INVALID_COMMAND (CommandError)', async () => {
    const e = await rejects(() => client.commands.execute('', cs), 'execute("")');
    expectError(e, { code: 'INVALID_COMMAND', name: 'CommandError', status: 400 });
  });
  await check('executeStream: start, stdout/stderr chunks, complete with the real exitCode', async () => {
    const stream = await client.commands.executeStream('echo one; echo two >&2; sleep 0.2; echo three; (exit 7)', cs);
    const { events, closed } = await readEvents(stream, 10000);
    const t = types(events);
    eq('first event', t[0], 'start');
    eq('start.command', events[0].command, 'echo one; echo two >&2; sleep 0.2; echo three; (exit 7)');
    eq('last event', t[t.length - 1], 'complete');
    eq('complete.exitCode', events[events.length - 1].exitCode, 7);
    eq('stdout chunks', joined(events, 'stdout'), 'one\nthree\n');
    eq('stderr chunks', joined(events, 'stderr'), 'two\n');
    ok('only start/stdout/stderr/complete', t.every((x) => ['start', 'stdout', 'stderr', 'complete'].includes(x)), t);
    eq('server closes the stream after complete', closed, true);
  });
  await check('executeStream with env and cwd, exit 0', async () => {
    const stream = await client.commands.executeStream('echo "$CONF_S"; pwd', cs, { env: { CONF_S: 'sv' }, cwd: '/tmp' });
    const { events } = await readEvents(stream, 10000);
    eq('stdout', joined(events, 'stdout'), 'sv\n/tmp\n');
    eq('complete.exitCode', events[events.length - 1]?.exitCode, 0);
  });
  // sandpit answers a timeout with its own stable code COMMAND_TIMEOUT (408),
  // which the client surfaces as a SandboxError carrying that code
  // (docs/sdk-contract.md, "Where sandpit differs").
  await check('timeoutMs: a longer command fails with COMMAND_TIMEOUT in bounded time', async () => {
    const t0 = Date.now();
    const e = await rejects(
      () => client.commands.execute('sleep 30', sid('timeout'), { timeoutMs: 500 }),
      'execute("sleep 30", {timeoutMs: 500})',
    );
    const took = Date.now() - t0;
    expectError(e, { code: 'COMMAND_TIMEOUT', name: 'SandboxError', status: 408 });
    ok(`answered within 10 s (took ${took} ms)`, took < 10000);
    ok('message mentions the timeout', /timeout|timed out/i.test(e.message), e.message);
  }, 15000);

  // ---- sessions
  section('sessions');
  const sa = sid('sa');
  const sb = sid('sb');
  await check('createSession({id, env, cwd}) succeeds', async () => {
    const r = await client.utils.createSession({ id: sa, env: { CONF_SESS: 'from-session' }, cwd: '/tmp' });
    eq('success', r.success, true);
    ok('containerPlacementId present (null is fine)', 'containerPlacementId' in r, r);
  });
  await check('the session starts with its env and cwd', async () => {
    const r = await client.commands.execute('echo "$CONF_SESS"; pwd', sa);
    eq('stdout', r.stdout, 'from-session\n/tmp\n');
  });
  await check('cd and export persist across execute calls in a session', async () => {
    const r1 = await client.commands.execute('cd /usr && export CONF_PERSIST=yes', sa);
    eq('first call exitCode', r1.exitCode, 0);
    const r2 = await client.commands.execute('pwd; echo "$CONF_PERSIST"', sa);
    eq('second call stdout', r2.stdout, '/usr\nyes\n');
  });
  // Shell functions and unexported variables do not carry over between
  // commands in sandpit (docs/sdk-contract.md, "Where sandpit differs").
  await check('another session does not see them', async () => {
    await client.utils.createSession({ id: sb });
    const r = await client.commands.execute('pwd; echo "[$CONF_PERSIST][$CONF_SESS][$CONF_PLAIN]"; type conf_fn >/dev/null 2>&1 && echo has-fn', sb);
    const lines = r.stdout.split('\n');
    ok('cwd is not /usr', lines[0] !== '/usr', r.stdout);
    eq('env', lines[1], '[][][]');
    ok('no function', !r.stdout.includes('has-fn'), r.stdout);
  });
  await check('createSession with an existing id -> SESSION_ALREADY_EXISTS', async () => {
    const e = await rejects(() => client.utils.createSession({ id: sa }), 'createSession(existing)');
    expectError(e, { code: 'SESSION_ALREADY_EXISTS', name: 'SessionAlreadyExistsError', status: 409 });
  });
  await check('deleteSession() succeeds', async () => {
    const r = await client.utils.deleteSession(sa);
    eq('success', r.success, true);
    eq('sessionId', r.sessionId, sa);
  });
  await check('after deleteSession the id starts afresh', async () => {
    const r = await client.commands.execute('echo "[$CONF_PERSIST][$CONF_SESS]"', sa);
    eq('stdout', r.stdout, '[][]\n');
  });
  await check('deleteSession of an unknown session is a "not found" error', async () => {
    const e = await rejects(() => client.utils.deleteSession(sid('never-created')), 'deleteSession(unknown)');
    // The real server answers INTERNAL_ERROR 500 "Session '<id>' not found".
    ok('message says the session was not found', /session.*not found/i.test(e.message), e.message);
  });
  await client.utils.deleteSession(sb).catch(() => {});
  await client.utils.deleteSession(sa).catch(() => {});

  // ---- files
  section('files');
  const fsid = sid('files');
  let base = process.env.SANDPIT_CONFORMANCE_WORKSPACE;
  if (!base && monitor) base = path.join(monitor.ws, 'default');
  if (!base) {
    try {
      base = (await withTimeout(client.commands.execute('pwd', fsid), 10000, 'pwd')).stdout.trim();
    } catch {
      /* leave it to the fallback */
    }
  }
  if (!base) base = '/workspace';
  const dir = `${base}/conformance-${RUN}`;
  const enc = new TextEncoder();
  if (monitor) {
    await check("a new session's cwd is the sandbox workspace", async () => {
      const r = await client.commands.execute('pwd', sid('fresh'));
      eq('pwd', r.stdout, `${base}\n`);
    });
  }
  await check('mkdir(recursive) creates nested directories', async () => {
    const r = await client.files.mkdir(`${dir}/a/b/c`, fsid, { recursive: true });
    eq('success', r.success, true);
    eq('exists', (await client.files.exists(`${dir}/a/b/c`, fsid)).exists, true);
  });
  // sandpit names this case FILE_EXISTS (FileExistsError), not FILESYSTEM_ERROR.
  await check('mkdir without recursive of an existing directory -> FILE_EXISTS', async () => {
    const e = await rejects(() => client.files.mkdir(`${dir}/a`, fsid), 'mkdir(existing)');
    expectError(e, { code: 'FILE_EXISTS', name: 'FileExistsError', status: 409 });
  });
  const text = 'héllo wörld\nline 2\n';
  await check('writeFile / readFile utf-8 round trip with metadata', async () => {
    const w = await client.files.writeFile(`${dir}/hello.txt`, text, fsid);
    eq('write success', w.success, true);
    const r = await client.files.readFile(`${dir}/hello.txt`, fsid);
    eq('content', r.content, text);
    eq('encoding', r.encoding, 'utf-8');
    eq('isBinary', r.isBinary, false);
    eq('size (bytes)', r.size, enc.encode(text).length);
    ok('mimeType text/*', typeof r.mimeType === 'string' && r.mimeType.startsWith('text/'), r.mimeType);
    const r2 = await client.files.readFile(`${dir}/hello.txt`, fsid, { encoding: 'utf-8' });
    eq('explicit utf-8 content', r2.content, text);
  });
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const b64 = Buffer.from(bytes).toString('base64');
  await check('writeFile / readFile base64 of all 256 byte values', async () => {
    await client.files.writeFile(`${dir}/bytes.bin`, b64, fsid, { encoding: 'base64' });
    const r = await client.files.readFile(`${dir}/bytes.bin`, fsid, { encoding: 'base64' });
    eq('content', r.content, b64);
    eq('encoding', r.encoding, 'base64');
    eq('size', r.size, 256);
  });
  await check('readFile of a binary file without encoding picks base64 (isBinary true)', async () => {
    const r = await client.files.readFile(`${dir}/bytes.bin`, fsid);
    eq('encoding', r.encoding, 'base64');
    eq('isBinary', r.isBinary, true);
    eq('content', r.content, b64);
  });
  await check('writeFile overwrites and creates missing parent directories', async () => {
    await client.files.writeFile(`${dir}/new/parent/f.txt`, 'first', fsid);
    await client.files.writeFile(`${dir}/new/parent/f.txt`, 'second', fsid);
    eq('content', (await client.files.readFile(`${dir}/new/parent/f.txt`, fsid)).content, 'second');
  });
  await check('relative paths resolve against the session cwd', async () => {
    const name = `rel-${RUN}.txt`;
    const cwd = (await client.commands.execute('pwd', fsid)).stdout.trim();
    await client.files.writeFile(name, 'rel', fsid);
    eq('exists at cwd', (await client.files.exists(`${cwd}/${name}`, fsid)).exists, true);
    await client.files.deleteFile(name, fsid);
  });
  await check('exists() true for a file and a directory, false for a missing path', async () => {
    eq('file', (await client.files.exists(`${dir}/hello.txt`, fsid)).exists, true);
    eq('dir', (await client.files.exists(`${dir}/a`, fsid)).exists, true);
    const r = await client.files.exists(`${dir}/nope`, fsid);
    eq('missing', r.exists, false);
    eq('missing: success', r.success, true);
  });
  await check('readFile of a missing file -> FileNotFoundError / FILE_NOT_FOUND', async () => {
    const e = await rejects(() => client.files.readFile(`${dir}/missing.txt`, fsid), 'readFile(missing)');
    expectError(e, { name: 'FileNotFoundError', code: 'FILE_NOT_FOUND', status: 404 });
    ok('context is an object', e.context && typeof e.context === 'object', e.context);
    eq('err.path (context.path)', e.path, `${dir}/missing.txt`);
    ok('timestamp', typeof e.timestamp === 'string', e.timestamp);
  });
  await check('listFiles: default is one level, no hidden entries, FileInfo fields', async () => {
    await client.files.writeFile(`${dir}/.hidden`, 'h', fsid);
    await client.files.writeFile(`${dir}/a/b/nested.txt`, 'nested', fsid);
    const r = await client.files.listFiles(dir, fsid);
    eq('success', r.success, true);
    ok('files is an array', Array.isArray(r.files), r);
    eq('count', r.count, r.files.length);
    const names = r.files.map((f) => f.name).sort();
    for (const n of ['a', 'bytes.bin', 'hello.txt', 'new']) ok(`lists ${n}`, names.includes(n), names);
    ok('no hidden file', !names.includes('.hidden'), names);
    ok('not recursive', !names.includes('nested.txt') && !names.includes('b'), names);
    const f = r.files.find((x) => x.name === 'hello.txt');
    eq('type', f.type, 'file');
    eq('absolutePath', f.absolutePath, `${dir}/hello.txt`);
    eq('relativePath', f.relativePath, 'hello.txt');
    eq('size', f.size, enc.encode(text).length);
    ok('modifiedAt a date string', typeof f.modifiedAt === 'string' && !Number.isNaN(Date.parse(f.modifiedAt)), f.modifiedAt);
    ok('mode like rw-r--r--', typeof f.mode === 'string' && /^[r-][w-][xsS-][r-][w-][xsS-][r-][w-][xtT-]$/.test(f.mode), f.mode);
    ok('permissions', f.permissions && f.permissions.readable === true && f.permissions.writable === true && typeof f.permissions.executable === 'boolean', f.permissions);
    eq('a is a directory', r.files.find((x) => x.name === 'a')?.type, 'directory');
  });
  await check('listFiles recursive: nested entries with relativePath', async () => {
    const r = await client.files.listFiles(dir, fsid, { recursive: true });
    const rel = r.files.map((f) => f.relativePath);
    for (const p of ['a', 'a/b', 'a/b/c', 'a/b/nested.txt', 'hello.txt']) ok(`has ${p}`, rel.includes(p), rel);
    ok('no hidden file', !rel.includes('.hidden'), rel);
    eq('a/b/c type', r.files.find((f) => f.relativePath === 'a/b/c')?.type, 'directory');
    eq('nested absolutePath', r.files.find((f) => f.relativePath === 'a/b/nested.txt')?.absolutePath, `${dir}/a/b/nested.txt`);
  });
  await check('listFiles includeHidden shows dot files', async () => {
    const r = await client.files.listFiles(dir, fsid, { includeHidden: true });
    ok('has .hidden', r.files.some((f) => f.name === '.hidden'), r.files.map((f) => f.name));
  });
  await check('listFiles of a missing directory -> FILE_NOT_FOUND', async () => {
    const e = await rejects(() => client.files.listFiles(`${dir}/nope`, fsid), 'listFiles(missing)');
    expectError(e, { code: 'FILE_NOT_FOUND', name: 'FileNotFoundError' });
  });
  await check('renameFile moves the content to the new name', async () => {
    await client.files.writeFile(`${dir}/old.txt`, 'renamed', fsid);
    const r = await client.files.renameFile(`${dir}/old.txt`, `${dir}/renamed.txt`, fsid);
    eq('success', r.success, true);
    eq('old gone', (await client.files.exists(`${dir}/old.txt`, fsid)).exists, false);
    eq('new content', (await client.files.readFile(`${dir}/renamed.txt`, fsid)).content, 'renamed');
  });
  await check('moveFile into another directory', async () => {
    const r = await client.files.moveFile(`${dir}/renamed.txt`, `${dir}/a/moved.txt`, fsid);
    eq('success', r.success, true);
    eq('source gone', (await client.files.exists(`${dir}/renamed.txt`, fsid)).exists, false);
    eq('moved content', (await client.files.readFile(`${dir}/a/moved.txt`, fsid)).content, 'renamed');
  });
  await check('renameFile of a missing source -> FILE_NOT_FOUND', async () => {
    const e = await rejects(() => client.files.renameFile(`${dir}/nope`, `${dir}/nope2`, fsid), 'renameFile(missing)');
    expectError(e, { code: 'FILE_NOT_FOUND', name: 'FileNotFoundError' });
  });
  await check('deleteFile removes a file', async () => {
    const r = await client.files.deleteFile(`${dir}/a/moved.txt`, fsid);
    eq('success', r.success, true);
    eq('gone', (await client.files.exists(`${dir}/a/moved.txt`, fsid)).exists, false);
  });
  await check('deleteFile of a missing file -> FILE_NOT_FOUND', async () => {
    const e = await rejects(() => client.files.deleteFile(`${dir}/nope`, fsid), 'deleteFile(missing)');
    expectError(e, { code: 'FILE_NOT_FOUND', name: 'FileNotFoundError', status: 404 });
  });
  await check('deleteFile of a directory -> IS_DIRECTORY (FileSystemError)', async () => {
    const e = await rejects(() => client.files.deleteFile(`${dir}/a`, fsid), 'deleteFile(dir)');
    expectError(e, { code: 'IS_DIRECTORY', name: 'FileSystemError', status: 400 });
  });
  await check('readFileStream + collectFile: text', async () => {
    const { content, metadata } = await collectFile(await client.files.readFileStream(`${dir}/hello.txt`, fsid));
    eq('content', content, text);
    eq('metadata.isBinary', metadata.isBinary, false);
    eq('metadata.encoding', metadata.encoding, 'utf-8');
    eq('metadata.size', metadata.size, enc.encode(text).length);
  });
  await check('readFileStream + streamFile: 200 KB binary, several independently base64-decodable chunks', async () => {
    const big = Buffer.alloc(200 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 8)) & 0xff;
    await client.files.writeFile(`${dir}/big.bin`, big.toString('base64'), fsid, { encoding: 'base64' });
    const gen = streamFile(await client.files.readFileStream(`${dir}/big.bin`, fsid));
    const parts = [];
    let res = await gen.next();
    while (!res.done) {
      parts.push(res.value);
      res = await gen.next();
    }
    const meta = res.value;
    eq('metadata.isBinary', meta.isBinary, true);
    eq('metadata.size', meta.size, big.length);
    ok('chunks are Uint8Array', parts.every((p) => p instanceof Uint8Array), parts.map((p) => typeof p));
    ok('more than one chunk', parts.length > 1, parts.length);
    const got = Buffer.concat(parts.map((p) => Buffer.from(p)));
    ok('bytes equal', got.equals(big), `got ${got.length} bytes`);
  }, 30000);
  await check('readFileStream of a missing file -> stream error event (streamFile throws)', async () => {
    let stream;
    try {
      stream = await client.files.readFileStream(`${dir}/missing.txt`, fsid);
    } catch (e) {
      fail(`readFileStream threw instead of a 200 stream with an error event: ${errText(e)}`);
    }
    const e = await rejects(() => collectFile(stream), 'collectFile(missing)');
    ok('"File streaming error"', /File streaming error/.test(e.message), e.message);
  });
  await client.commands.execute(`rm -rf '${dir}'`, fsid).catch(() => {});

  // ---- processes
  section('processes');
  const ps = sid('proc');
  const pid = (n) => `conf-${n}-${RUN}`;
  const terminal = ['completed', 'failed', 'killed', 'error'];
  // client.processes.startProcess, remembering pids so that cleanup can
  // reap them even if the monitor died under the test.
  const startProc = async (command, session, options) => {
    const r = await client.processes.startProcess(command, session, options);
    if (r && typeof r.pid === 'number') startedPids.push(r.pid);
    return r;
  };
  const statusOf = async (id) => (await client.processes.getProcess(id)).process;
  const waitStatus = (id, want, ms = 8000) =>
    waitFor(async () => {
      const p = await statusOf(id);
      return (Array.isArray(want) ? want.includes(p.status) : p.status === want) ? p : null;
    }, ms, `process ${id} to be ${want}`);

  await check('startProcess with processId', async () => {
    const r = await startProc('echo out1; echo err1 >&2; sleep 0.3; echo out2', ps, { processId: pid('a') });
    eq('success', r.success, true);
    eq('processId', r.processId, pid('a'));
    ok('pid is a number', r.pid === undefined || typeof r.pid === 'number', r.pid);
  });
  await check('getProcess returns {id, command, status, startTime}', async () => {
    const r = await client.processes.getProcess(pid('a'));
    eq('success', r.success, true);
    eq('process.id', r.process.id, pid('a'));
    eq('process.command', r.process.command, 'echo out1; echo err1 >&2; sleep 0.3; echo out2');
    ok('status known', ['starting', 'running', ...terminal].includes(r.process.status), r.process.status);
    ok('startTime a date', !Number.isNaN(Date.parse(r.process.startTime)), r.process.startTime);
  });
  await check('listProcesses includes it', async () => {
    const r = await client.processes.listProcesses();
    eq('success', r.success, true);
    ok('array', Array.isArray(r.processes), r);
    ok('has the process', r.processes.some((p) => p.id === pid('a')), r.processes.map((p) => p.id));
  });
  await check('exit 0 -> status completed, exitCode 0', async () => {
    const p = await waitStatus(pid('a'), terminal);
    eq('status', p.status, 'completed');
    eq('exitCode', p.exitCode, 0);
  });
  await check('getProcessLogs returns the whole stdout and stderr', async () => {
    const r = await client.processes.getProcessLogs(pid('a'));
    eq('success', r.success, true);
    eq('processId', r.processId, pid('a'));
    eq('stdout', r.stdout, 'out1\nout2\n');
    eq('stderr', r.stderr, 'err1\n');
  });
  await check('startProcess without processId generates an id', async () => {
    const r = await startProc('true', ps);
    ok('processId', typeof r.processId === 'string' && r.processId.length > 0, r);
    eq('getProcess finds it', (await client.processes.getProcess(r.processId)).process.id, r.processId);
  });
  await check('startProcess env and cwd', async () => {
    await startProc('echo "$CONF_PV"; pwd', ps, { processId: pid('env'), env: { CONF_PV: 'pv' }, cwd: '/tmp' });
    await waitStatus(pid('env'), terminal);
    eq('stdout', (await client.processes.getProcessLogs(pid('env'))).stdout, 'pv\n/tmp\n');
  });
  await check('streamProcessLogs: process_info, stdout events, exit with exitCode, then close', async () => {
    await startProc('echo s1; sleep 0.4; echo s2; exit 5', ps, { processId: pid('stream') });
    const { events, closed } = await readEvents(await client.processes.streamProcessLogs(pid('stream')), 10000);
    const t = types(events);
    eq('first event', t[0], 'process_info');
    eq('process_info.processId', events[0].processId, pid('stream'));
    eq('last event', t[t.length - 1], 'exit');
    eq('exit.exitCode', events[events.length - 1].exitCode, 5);
    eq('stdout data concatenated', joined(events, 'stdout'), 's1\ns2\n');
    eq('server closes the stream after exit', closed, true);
    eq('status after', (await statusOf(pid('stream'))).status, 'failed');
  });
  await check('streamProcessLogs of a finished process replays output then exit', async () => {
    const { events, closed } = await readEvents(await client.processes.streamProcessLogs(pid('a')), 5000);
    const t = types(events);
    eq('first', t[0], 'process_info');
    eq('last', t[t.length - 1], 'exit');
    eq('exitCode', events[events.length - 1].exitCode, 0);
    eq('stdout replay', joined(events, 'stdout'), 'out1\nout2\n');
    eq('stderr replay', joined(events, 'stderr'), 'err1\n');
    eq('closed', closed, true);
  });
  await check('killProcess stops a running process (status killed)', async () => {
    await startProc('sleep 60', ps, { processId: pid('kill') });
    await waitStatus(pid('kill'), 'running', 5000);
    const r = await client.processes.killProcess(pid('kill'));
    eq('success', r.success, true);
    const p = await waitStatus(pid('kill'), terminal, 10000);
    eq('status', p.status, 'killed');
  }, 25000);
  await check('killAllProcesses stops every running process', async () => {
    await startProc('sleep 60', ps, { processId: pid('k1') });
    await startProc('sleep 60', ps, { processId: pid('k2') });
    await waitStatus(pid('k1'), 'running', 5000);
    await waitStatus(pid('k2'), 'running', 5000);
    const r = await client.processes.killAllProcesses();
    eq('success', r.success, true);
    ok('cleanedCount >= 2', typeof r.cleanedCount === 'number' && r.cleanedCount >= 2, r);
    eq('k1', (await waitStatus(pid('k1'), terminal, 10000)).status, 'killed');
    eq('k2', (await waitStatus(pid('k2'), terminal, 10000)).status, 'killed');
  }, 30000);
  await check('getProcess of an unknown id -> ProcessNotFoundError / PROCESS_NOT_FOUND', async () => {
    const e = await rejects(() => client.processes.getProcess(pid('nope')), 'getProcess(unknown)');
    expectError(e, { name: 'ProcessNotFoundError', code: 'PROCESS_NOT_FOUND', status: 404 });
    eq('err.processId (context.processId)', e.processId, pid('nope'));
  });
  await check('killProcess / getProcessLogs / streamProcessLogs of an unknown id -> PROCESS_NOT_FOUND', async () => {
    for (const [what, fn] of [
      ['killProcess', () => client.processes.killProcess(pid('nope'))],
      ['getProcessLogs', () => client.processes.getProcessLogs(pid('nope'))],
      ['streamProcessLogs', () => client.processes.streamProcessLogs(pid('nope'))],
    ]) {
      const e = await rejects(fn, what);
      eq(`${what}: err.code`, errCode(e), 'PROCESS_NOT_FOUND');
      eq(`${what}: err.name`, e.name, 'ProcessNotFoundError');
    }
  });

  // ---- ports
  section('ports');
  const node = monitor ? process.execPath : process.env.SANDPIT_CONFORMANCE_NODE || 'node';
  // A port free here, and never one handed out before: the servers run in
  // the target, which may have its own network, where an earlier one may
  // still listen on a port this machine sees as free again.
  const usedPorts = new Set();
  const freePort = () =>
    new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    }).then((p) => (usedPorts.has(p) ? freePort() : (usedPorts.add(p), p)));
  const server = (port) =>
    `sleep 1; exec ${node} -e "require('http').createServer((q, s) => s.end('ok')).listen(${port}); setTimeout(process.exit, 30000)"`;
  const watch = (req, ms = 15000) => client.ports.watchPort(req).then((s) => readEvents(s, ms));

  await check('port-watch (http): watching, then ready once the process listens', async () => {
    const port = await freePort();
    await startProc(server(port), ps, { processId: pid('http') });
    const { events, closed } = await watch({
      port, mode: 'http', path: '/', statusMin: 200, statusMax: 399, processId: pid('http'), interval: 200,
    });
    const t = types(events);
    eq('first event', t[0], 'watching');
    eq('watching.port', events[0].port, port);
    eq('last event', t[t.length - 1], 'ready');
    eq('ready.port', events[events.length - 1].port, port);
    const sc = events[events.length - 1].statusCode;
    ok('ready.statusCode 200 if given', sc === undefined || sc === 200, sc);
    eq('closed after ready', closed, true);
  }, 25000);
  await check('port-watch (tcp): ready for a listening port', async () => {
    const port = await freePort();
    await startProc(server(port), ps, { processId: pid('tcp') });
    const { events } = await watch({ port, mode: 'tcp', processId: pid('tcp'), interval: 200 });
    const t = types(events);
    eq('first event', t[0], 'watching');
    eq('last event', t[t.length - 1], 'ready');
  }, 25000);
  await check('port-watch: the process exits first -> process_exited with its exitCode', async () => {
    const port = await freePort();
    await startProc('sleep 0.3; exit 2', ps, { processId: pid('pexit') });
    const { events } = await watch({
      port, mode: 'http', path: '/', statusMin: 200, statusMax: 399, processId: pid('pexit'), interval: 200,
    });
    const last = events[events.length - 1];
    eq('first', types(events)[0], 'watching');
    eq('last', last?.type, 'process_exited');
    eq('exitCode', last?.exitCode, 2);
  }, 25000);
  await check('port-watch with an unknown processId -> error event', async () => {
    const port = await freePort();
    const { events } = await watch({ port, mode: 'tcp', processId: pid('nope'), interval: 200 }, 8000);
    eq('last', events[events.length - 1]?.type, 'error');
  }, 15000);
  await client.processes.killAllProcesses().catch(() => {});
}

// ---------------------------------------------------------------- entry

// Never leave a monitor behind, even when this process dies early (killed,
// stdout closed under it, an uncaught error).
process.on('exit', () => {
  if (!monitor) return;
  if (monitor.exited === null) monitor.child.kill('SIGTERM'); // it cleans up on its own
  else reapStarted();
  if (process.env.SANDPIT_CONFORMANCE_KEEP !== '1') fs.rmSync(monitor.tmp, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(1));
process.stdout.on('error', () => process.exit(1));

const globalTimer = setTimeout(async () => {
  if (finished) return;
  finished = true;
  failed++;
  out(`  FAIL global timeout: the run did not finish within ${GLOBAL_TIMEOUT_S} s`);
  await withTimeout(stopAll(), 14000, 'cleanup').catch(() => {});
  summary();
  process.exit(1);
}, GLOBAL_TIMEOUT_S * 1000);

try {
  await main();
} catch (e) {
  if (!finished) {
    failed++;
    out(`  FAIL setup: ${errText(e)}`);
    if (e && e.stack && !(e instanceof Failure)) out(e.stack.split('\n').slice(1, 4).join('\n'));
  }
}
if (!finished) {
  clearTimeout(globalTimer);
  await withTimeout(stopAll(), 15000, 'cleanup').catch((e) => out(`(cleanup: ${errText(e)})`));
  finished = true;
  summary();
  process.exit(failed ? 1 : 0);
}
