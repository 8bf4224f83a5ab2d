// A shop's side of the bakong-poller HTTP API: Node 18+, no dependencies.
//
// Run:  BAKONG_API=http://127.0.0.1:8080 BAKONG_API_KEY=bkp_... \
//       BAKONG_WEBHOOK_SECRET=whsec_... node shop.mjs
// Open: http://127.0.0.1:3000/checkout?order=order-1042, and set the daemon's
//       [webhook] url = "http://127.0.0.1:3000/bakong-events" (same secret).
import { createServer } from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";

const API = process.env.BAKONG_API.replace(/\/$/, ""); // e.g. https://pay.example.com
const AUTH = { Authorization: `Bearer ${process.env.BAKONG_API_KEY}` };
const SECRET = Buffer.from(process.env.BAKONG_WEBHOOK_SECRET.replace(/^whsec_/, ""), "base64");

const orderTotal = (orderId) => "5.00"; // your database
// Events may come twice (delivery is at least once): mark an order paid idempotently.
const markPaid = (orderId, hash) => console.log(`order ${orderId} paid (${hash})`);

async function checkout(orderId) {
  // Idempotency-Key = the order: a reload or a retry answers the same payment.
  const r = await fetch(`${API}/v1/payments`, {
    method: "POST",
    headers: { ...AUTH, "Content-Type": "application/json", "Idempotency-Key": orderId },
    body: JSON.stringify({
      amount: orderTotal(orderId), currency: "USD", order_id: orderId, expires_in: "15m",
    }),
    signal: AbortSignal.timeout(10_000),
  });
  // Not 201: an application/problem+json body says why.
  if (r.status !== 201) throw new Error(`bakong-poller answered ${r.status}: ${await r.text()}`);
  const p = await r.json();
  return `<p>Pay ${p.amount} ${p.currency} before ${p.expires_at}</p>` +
    `<img src="/qr?id=${p.id}" width="300" alt="KHQR">`;
}

// Standard Webhooks: "v1," + base64 HMAC-SHA256 of "id.timestamp.body".
function verified(headers, body) {
  const id = headers["webhook-id"] ?? "", ts = headers["webhook-timestamp"] ?? "";
  if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false; // stale
  const mac = createHmac("sha256", SECRET).update(`${id}.${ts}.`).update(body).digest("base64");
  const expected = Buffer.from(`v1,${mac}`);
  return (headers["webhook-signature"] ?? "").split(" ").some((s) => { // several while rotating
    const b = Buffer.from(s);
    return b.length === expected.length && timingSafeEqual(b, expected);
  });
}

createServer(async (req, res) => {
  const url = new URL(req.url, "http://shop");
  const order = url.searchParams.get("order") ?? "", id = url.searchParams.get("id") ?? "";
  try {
    if (req.method === "GET" && url.pathname === "/checkout" && /^[\w-]{1,100}$/.test(order)) {
      res.writeHead(200, { "Content-Type": "text/html" }).end(await checkout(order));
    } else if (req.method === "GET" && url.pathname === "/qr" && /^[0-9a-f]{32}$/.test(id)) {
      // The browser has no API key: the shop's backend fetches the image.
      const r = await fetch(`${API}/v1/payments/${id}/qr.svg`, { headers: AUTH });
      res.writeHead(r.status, { "Content-Type": r.headers.get("content-type") });
      res.end(Buffer.from(await r.arrayBuffer()));
    } else if (req.method === "POST" && url.pathname === "/bakong-events") {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const body = Buffer.concat(chunks); // the raw body: what was signed
      if (!verified(req.headers, body)) return res.writeHead(401).end();
      const event = JSON.parse(body);
      const paid = event.type === "payment.paid" || event.type === "payment.paid_late";
      if (paid && event.data.order_id) markPaid(event.data.order_id, event.data.bakong_hash);
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  } catch (e) {
    console.error(e);
    res.writeHead(503).end("Payment unavailable, please retry");
  }
}).listen(3000, "127.0.0.1");
