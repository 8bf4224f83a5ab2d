r"""A shop's side of the bakong-poller HTTP API: Flask and requests.

Run:   pip install flask requests; BAKONG_API=http://127.0.0.1:8080 \
       BAKONG_API_KEY=bkp_... BAKONG_WEBHOOK_SECRET=whsec_... flask --app shop run
Open:  http://127.0.0.1:5000/checkout?order=order-1042, and set the daemon's
       [webhook] url = "http://127.0.0.1:5000/bakong-events" (same secret).
"""
import base64
import hashlib
import hmac
import json
import os
import re
import time

import requests
from flask import Flask, Response, abort, request

API = os.environ["BAKONG_API"].rstrip("/")  # e.g. https://pay.example.com
SECRET = base64.b64decode(os.environ["BAKONG_WEBHOOK_SECRET"].removeprefix("whsec_"))
bakong = requests.Session()
bakong.headers["Authorization"] = "Bearer " + os.environ["BAKONG_API_KEY"]
app = Flask(__name__)


def order_total(order_id):  # your database
    return "5.00"


def mark_paid(order_id, bakong_hash):  # your database; idempotent: events may come twice
    app.logger.warning("order %s paid (%s)", order_id, bakong_hash)


@app.get("/checkout")
def checkout():
    order_id = request.args.get("order", "")
    if not re.fullmatch(r"[\w-]{1,100}", order_id):
        abort(404)
    # Idempotency-Key = the order: a reload or a retry answers the same payment.
    r = bakong.post(f"{API}/v1/payments", timeout=10,
                    headers={"Idempotency-Key": order_id},
                    json={"amount": order_total(order_id), "currency": "USD",
                          "order_id": order_id, "expires_in": "15m"})
    if r.status_code != 201:  # an application/problem+json body says why
        app.logger.error("bakong-poller answered %s: %s", r.status_code, r.text)
        return "Payment unavailable, please retry", 503
    p = r.json()
    return (f'<p>Pay {p["amount"]} {p["currency"]} before {p["expires_at"]}</p>'
            f'<img src="/qr?id={p["id"]}" width="300" alt="KHQR">')


@app.get("/qr")
def qr():  # the browser has no API key: the shop's backend fetches the image
    pid = request.args.get("id", "")
    if not re.fullmatch(r"[0-9a-f]{32}", pid):
        abort(404)
    r = bakong.get(f"{API}/v1/payments/{pid}/qr.svg", timeout=10)
    return Response(r.content, r.status_code, content_type=r.headers["content-type"])


def verified(headers, body):
    """Standard Webhooks: "v1," + base64 HMAC-SHA256 of "id.timestamp.body"."""
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False  # stale: a replay, or a clock out of sync
    mac = hmac.new(SECRET, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    sigs = headers.get("webhook-signature", "").split(" ")  # several while rotating
    return any(hmac.compare_digest(s.encode(), expected.encode()) for s in sigs)


@app.post("/bakong-events")
def bakong_events():
    body = request.get_data()  # the raw body: what was signed
    if not verified(request.headers, body):
        abort(401)
    event = json.loads(body)
    if event["type"] in ("payment.paid", "payment.paid_late") and event["data"]["order_id"]:
        mark_paid(event["data"]["order_id"], event["data"]["bakong_hash"])
    return "", 204
