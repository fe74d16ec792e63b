// The new side: a small Node service that answers the same catalog API from
// the same data, computed instead of served from files. It is not part of the
// toolkit: any HTTP service would do. Its one known difference (a product's
// price as a string) is what the shadow step shows.
//   NEW_PORT      listen port (default 18081)
//   NEW_MODE      "ok" (default) or "broken": every API answer is a 500 (the rollback drill)
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const port = Number(process.env.NEW_PORT ?? 18081);
const mode = process.env.NEW_MODE ?? 'ok';
const { products } = JSON.parse(readFileSync(new URL('./data/products.json', import.meta.url), 'utf8'));
let requests = 0;
let errors = 0;

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz') return send(res, 200, { status: 'ok' });
  if (path === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    return res.end(`# TYPE catalog_requests_total counter\ncatalog_requests_total ${requests}\n# TYPE catalog_errors_total counter\ncatalog_errors_total ${errors}\n`);
  }
  requests++;
  if (mode === 'broken') {
    errors++;
    return send(res, 500, { code: 'INTERNAL', message: 'the new catalog is broken on purpose (NEW_MODE=broken)' });
  }
  const served_at = new Date().toISOString();
  if (path === '/api/products') return send(res, 200, { products, served_at });
  const m = /^\/api\/products\/(\d+)$/.exec(path);
  const product = m && products.find((p) => p.id === Number(m[1]));
  if (!product) return send(res, 404, { code: 'NOT_FOUND', message: 'no such resource' });
  // The difference the shadow step finds: product 3's price comes back as a string.
  return send(res, 200, { product: product.id === 3 ? { ...product, price: String(product.price) } : product, served_at });
});
server.listen(port, '127.0.0.1', () => console.log(`new catalog (${mode}) on http://127.0.0.1:${port}, pid ${process.pid}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
