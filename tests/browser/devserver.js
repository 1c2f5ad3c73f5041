// A tiny dev server with a WebSocket reload channel, as an AI code
// generator's sandbox would run: it serves site/index.html with a client
// script added, watches the file, and on every change tells each open page
// over the WebSocket, which swaps its #app in place (no navigation) and
// counts the updates into the page.  Needs the `ws` package in
// ./node_modules.  Usage: node devserver.js PORT
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 8000);
const page = path.join(__dirname, 'site', 'index.html');

const client = `
<div id="hot-status" style="margin-top:2em;font:14px monospace;color:#555">websocket: connecting</div>
<script>
(function () {
  var updates = 0;
  var status = document.getElementById('hot-status');
  function show(state) {
    status.textContent = 'websocket: ' + state + ' \\u00b7 hot updates: ' + updates;
    document.documentElement.dataset.ws = state;
    document.documentElement.dataset.updates = String(updates);
  }
  var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/__hot');
  ws.onopen = function () { show('open'); };
  ws.onclose = function () { show('closed'); };
  ws.onmessage = function (ev) {
    if (ev.data !== 'reload') return;
    fetch(location.pathname, { cache: 'no-store' }).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, 'text/html');
      var fresh = doc.getElementById('app');
      if (fresh) document.getElementById('app').replaceWith(document.importNode(fresh, true));
      updates++;
      show('open');
      console.log('hot update ' + updates);
    });
  };
})();
</script>`;

function render() {
  const html = fs.readFileSync(page, 'utf8');
  const i = html.lastIndexOf('</body>');
  return i < 0 ? html + client : html.slice(0, i) + client + html.slice(i);
}

const server = http.createServer((req, res) => {
  const url = req.url.split('?')[0];
  if (req.method !== 'GET' || (url !== '/' && url !== '/index.html')) {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found\n');
    return;
  }
  let body;
  try {
    body = render();
  } catch (e) {
    res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end(String(e) + '\n');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(body);
  console.log('GET ' + req.url + ' host=' + req.headers.host + ' xff=' + req.headers['x-forwarded-for']);
});

const wss = new WebSocketServer({ server, path: '/__hot' });
wss.on('connection', (sock, req) => {
  console.log('websocket connected host=' + req.headers.host + ' (' + wss.clients.size + ' open)');
  sock.on('close', () => console.log('websocket closed (' + wss.clients.size + ' open)'));
});

// Poll the file's content: works whether it is rewritten in place or
// replaced by a rename, and on any filesystem.
function digest() {
  try {
    return crypto.createHash('sha1').update(fs.readFileSync(page)).digest('hex');
  } catch (e) {
    return null;
  }
}
let last = digest();
setInterval(() => {
  const now = digest();
  if (now === null || now === last) return;
  last = now;
  let n = 0;
  for (const c of wss.clients) {
    if (c.readyState === 1) {
      c.send('reload');
      n++;
    }
  }
  console.log('index.html changed: reload sent to ' + n + ' page(s)');
}, 100);

server.listen(port, '127.0.0.1', () => console.log('dev server listening on 127.0.0.1:' + port));
