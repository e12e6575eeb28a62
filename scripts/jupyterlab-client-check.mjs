// Drives a Jupyter-protocol server (JupyCell itself, or `jupyter server --gateway-url=<JupyCell>`) with JupyterLab's
// own kernel client library, @jupyterlab/services: kernel specs, start, execute, interrupt, restart, complete,
// shut down. Exits non-zero on the first thing that does not behave. Run it with scripts/jupyterlab-client-check.sh.
import assert from 'node:assert/strict';
import { KernelManager, KernelSpecAPI, ServerConnection } from '@jupyterlab/services';
import WebSocket from 'ws';

const [baseUrl, token = ''] = process.argv.slice(2);
if (!baseUrl) throw new Error('usage: jupyterlab-client-check.mjs URL [TOKEN]');
// Browsers cannot set headers on a websocket and append ?token= instead; JupyCell wants the header.
class AuthWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, token ? { headers: { Authorization: `token ${token}` } } : {});
  }
}
const serverSettings = ServerConnection.makeSettings({
  baseUrl, wsUrl: baseUrl.replace(/^http/, 'ws'), token, appendToken: false, WebSocket: AuthWebSocket,
  fetch, Request, Headers,
});

async function run(kernel, code) {
  const out = [];
  const future = kernel.requestExecute({ code });
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === 'stream') out.push(msg.content.text);
    if (msg.header.msg_type === 'error') out.push(`ERROR ${msg.content.ename}`);
  };
  const reply = await future.done;
  return [reply.content.status, out.join('')];
}

const specs = await KernelSpecAPI.getSpecs(serverSettings);
console.log('kernel specs:', Object.keys(specs.kernelspecs).join(', '), '- default', specs.default);
const manager = new KernelManager({ serverSettings });
await manager.ready;
const started = Date.now();
const kernel = await manager.startNew({ name: specs.default });
const info = await kernel.info;
console.log(`kernel ${kernel.id} answered in ${Date.now() - started} ms: ${info.implementation}, protocol`,
            info.protocol_version, '- websocket subprotocol:', JSON.stringify(kernel._ws?.protocol ?? ''));
try {
  assert.deepEqual(await run(kernel, 'x = 6 * 7\nprint(x)'), ['ok', '42\n']);
  const looping = run(kernel, 'import time\nwhile True: time.sleep(0.05)');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await kernel.interrupt();
  assert.deepEqual(await looping, ['error', 'ERROR KeyboardInterrupt']);
  assert.deepEqual(await run(kernel, 'print(x)'), ['ok', '42\n']);
  // A restart the user asks for must not look like a crash: JupyterLab shows its blocking "the kernel appears to
  // have died" dialog when the kernel's status becomes 'autorestarting' (an IOPub `status: restarting`).
  const statuses = [];
  kernel.statusChanged.connect((_, status) => statuses.push(status));
  await kernel.restart();
  assert.deepEqual(await run(kernel, 'print(x)'), ['error', 'ERROR NameError']);
  assert.ok(!statuses.includes('autorestarting'), `statuses after a requested restart: ${statuses.join(', ')}`);
  console.log('statuses around the requested restart:', statuses.join(', '));
  const completion = await kernel.requestComplete({ code: 'impo', cursor_pos: 4 });
  assert.ok(completion.content.matches.includes('import'));
  console.log('execute, interrupt, restart, complete: ok');
} finally {
  await kernel.shutdown();
  manager.dispose();
}
console.log('shut down: ok');
process.exit(0);
