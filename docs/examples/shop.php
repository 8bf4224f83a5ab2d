<?php
// A shop's side of the bakong-poller HTTP API: plain PHP 8 with the curl extension.
//
// Run:  BAKONG_API=http://127.0.0.1:8080 BAKONG_API_KEY=bkp_... \
//       BAKONG_WEBHOOK_SECRET=whsec_... php -S 127.0.0.1:8000 shop.php
// Open: http://127.0.0.1:8000/checkout?order=order-1042, and set the daemon's
//       [webhook] url = "http://127.0.0.1:8000/bakong-events" (same secret).
// In Laravel the call is Http::withToken($key)->withHeaders(['Idempotency-Key' => $order])
//       ->post("$api/v1/payments", [...]), and the handler reads $request->getContent().

function bakong(string $method, string $path, ?array $body = null, array $headers = []): array
{
    $ch = curl_init(rtrim(getenv('BAKONG_API'), '/') . $path); // e.g. https://pay.example.com
    $headers[] = 'Authorization: Bearer ' . getenv('BAKONG_API_KEY');
    if ($body !== null) {
        $headers[] = 'Content-Type: application/json';
        curl_setopt($ch, CURLOPT_POSTFIELDS, json_encode($body));
    }
    curl_setopt_array($ch, [CURLOPT_CUSTOMREQUEST => $method, CURLOPT_HTTPHEADER => $headers,
        CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 10]);
    $out = (string) curl_exec($ch);
    $type = (string) curl_getinfo($ch, CURLINFO_CONTENT_TYPE);
    return [curl_getinfo($ch, CURLINFO_RESPONSE_CODE), $out, $type];
}

function order_total(string $order): string { return '5.00'; } // your database
// Events may come twice (delivery is at least once): mark an order paid idempotently.
function mark_paid(string $order, ?string $hash): void { error_log("order $order paid ($hash)"); }

// Standard Webhooks: "v1," + base64 HMAC-SHA256 of "id.timestamp.body".
function verified(array $h, string $body): bool
{
    $id = $h['webhook-id'] ?? '';
    $ts = $h['webhook-timestamp'] ?? '';
    if (!ctype_digit($ts) || abs(time() - (int) $ts) > 300) return false; // stale
    $secret = base64_decode(preg_replace('/^whsec_/', '', getenv('BAKONG_WEBHOOK_SECRET')));
    $expected = 'v1,' . base64_encode(hash_hmac('sha256', "$id.$ts.$body", $secret, true));
    foreach (explode(' ', $h['webhook-signature'] ?? '') as $sig) { // several while rotating
        if (hash_equals($expected, $sig)) return true;
    }
    return false;
}

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$order = (string) ($_GET['order'] ?? '');
$id = (string) ($_GET['id'] ?? '');
if ($path === '/checkout' && preg_match('/^[\w-]{1,100}$/D', $order)) {
    // Idempotency-Key = the order: a reload or a retry answers the same payment.
    [$status, $out] = bakong('POST', '/v1/payments', ['amount' => order_total($order),
        'currency' => 'USD', 'order_id' => $order, 'expires_in' => '15m'], ["Idempotency-Key: $order"]);
    if ($status !== 201) { // an application/problem+json body says why
        error_log("bakong-poller answered $status: $out");
        http_response_code(503);
        exit('Payment unavailable, please retry');
    }
    $p = json_decode($out, true);
    echo "<p>Pay {$p['amount']} {$p['currency']} before {$p['expires_at']}</p>",
        "<img src=\"/qr?id={$p['id']}\" width=\"300\" alt=\"KHQR\">";
} elseif ($path === '/qr' && preg_match('/^[0-9a-f]{32}$/D', $id)) {
    // The browser has no API key: the shop's backend fetches the image.
    [$status, $out, $type] = bakong('GET', "/v1/payments/$id/qr.svg");
    http_response_code($status);
    header("Content-Type: $type");
    echo $out;
} elseif ($path === '/bakong-events' && $_SERVER['REQUEST_METHOD'] === 'POST') {
    $body = file_get_contents('php://input'); // the raw body: what was signed
    if (!verified(array_change_key_case(getallheaders(), CASE_LOWER), $body)) {
        http_response_code(401);
        exit;
    }
    $event = json_decode($body, true);
    [$type, $data] = [$event['type'], $event['data']];
    if (($type === 'payment.paid' || $type === 'payment.paid_late') && $data['order_id'] !== null) {
        mark_paid($data['order_id'], $data['bakong_hash']);
    }
    http_response_code(204);
} else {
    http_response_code(404);
}
