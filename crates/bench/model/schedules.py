#!/usr/bin/env python3
"""Schedule families against the bound: a discrete model of bulk checking.

Issue 22 item 6 asks for p99 paid -> confirmed <= 1.5 s at no more than
1.25x the bound (`bench --sections bound`) at 10 payments/s. The bound is
fluid: it lets a request carry a fraction of 50 md5s. At 10 payments/s the
payments that must be checked every cadence for p99 <= 1.5 s (about the
first 15-17 s of each payment's life) are 50-55 md5s: just over one
request, so a real schedule either sends a second, mostly empty request
each cadence or lets some of them wait, and the waits cost latency.

This model runs the bench's checkout traffic (10 payments/s, paid after an
exponential delay of mean 4 s cut at 30 s, 1 in 10 never paid, expiry
2 min) through several families of schedules on a cadence grid, with a
40 ms round trip and no other cost (no database, no scan lag, no 429), and
prints requests per confirmation in the steady part (from 75 s to 300 s),
its ratio to the bound at that cadence, and p99 (over every confirmation
of the run). Checks are instantaneous here, so no row is ever in flight
twice. The product's own
schedule is the family "today"; `bench --sections targets` measures the
real daemon (its p99 is about 0.2 s above this model's: the scan interval,
the database write).

Run: python3 crates/bench/model/schedules.py [--quick]
(standard library only; a few seconds, --quick under one).
"""
import math
import random
import sys

RATE = 10.0
EXPIRY = 120.0
MEAN = 4.0
CUT = 30.0
NEVER = 0.1
RTT = 0.04
BATCH = 50
HOT = 15.0  # the product's schedule::HOT_PERIOD
T_END = 300.0
WARM = 75.0

# `cargo run -p bakong-poller-bench --release -- --sections bound`
# (crates/bench/src/bound.rs), p99 <= 1.5 s, 50 md5s a request.
BOUND = {0.8: 0.1396, 0.9: 0.1314, 1.0: 0.1203, 1.1: 0.1103, 1.2: 0.1016}


class Row:
    __slots__ = ("created", "paid", "due", "last", "held")

    def __init__(self, created, paid, due):
        self.created = created
        self.paid = paid
        self.due = due
        self.last = created
        self.held = 0


def today_interval(age, c, rnd):
    """schedule::next_bulk_interval: one cadence while hot, then growing with
    the square of the age up to 60 s; jitter 0.2."""
    base = c if age < HOT else min(c * (age / HOT) ** 2, 60.0)
    return base * (1 + rnd.uniform(0, 0.2))


def run(policy, c, seed, interval=today_interval, first=0.0, tick=None):
    """One run; `policy(live, t, c)` returns the requests (lists of rows)."""
    rnd = random.Random(seed)
    rows = []
    arrival = 0.0
    t = 0.0
    step = tick or c
    lat = []
    requests = 0
    confirmed = 0
    while t < T_END + 40:
        while arrival <= t and arrival < T_END:
            paid = None
            if rnd.random() >= NEVER:
                paid = arrival + min(rnd.expovariate(1 / MEAN), CUT)
            rows.append(Row(arrival, paid, arrival + first))
            arrival += 1 / RATE
        sends = policy(rows, t, c)
        done = set()
        for req in sends:
            steady = WARM <= t < T_END
            requests += steady
            for r in req:
                r.last = t
                if r.paid is not None and r.paid <= t:
                    lat.append(t + RTT - r.paid)
                    confirmed += steady
                    done.add(id(r))
                elif t > r.created + EXPIRY:
                    done.add(id(r))
                else:
                    nxt = t + interval(t - r.created, c, rnd)
                    deadline = r.created + EXPIRY
                    r.due = deadline + 0.001 if t < deadline < nxt else nxt
        if done:
            rows = [r for r in rows if id(r) not in done]
        t += step
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
    return requests / max(confirmed, 1), p99


def chunks(rows):
    return [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]


def at_deadline(r, t, c):
    return r.created + EXPIRY <= t + c


def today(live, t, c):
    """The product: every row due within half a cadence, urgent first, in as
    few requests as they fill; the last one's spare places carry the rows
    due soonest."""
    due = [r for r in live if r.due <= t + c / 2]
    due.sort(key=lambda r: not (t - r.created < HOT or at_deadline(r, t, c)))
    spare = (BATCH - len(due) % BATCH) % BATCH
    if spare:
        taken = {id(r) for r in due}
        more = sorted((r for r in live if id(r) not in taken and r.due <= t + 60), key=lambda r: r.due)
        due += more[:spare]
    return chunks(due)


def partial_waits(young):
    """The due rows that do not fill a request wait one cadence unless one of
    them is younger than `young` s, at its deadline, or already held once."""
    def policy(live, t, c):
        due = [r for r in live if r.due <= t + c / 2]
        due.sort(key=lambda r: (not at_deadline(r, t, c), -r.created))
        full = len(due) // BATCH
        send, rest = due[:full * BATCH], due[full * BATCH:]
        if rest and (full == 0 or any(at_deadline(r, t, c) or t - r.created < young or r.held for r in rest)):
            send += rest
            spare = (BATCH - len(send) % BATCH) % BATCH
            taken = {id(r) for r in send}
            more = sorted((r for r in live if id(r) not in taken and r.due <= t + 60 and t - r.created >= HOT),
                          key=lambda r: r.due)
            send += more[:spare]
        else:
            for r in rest:
                r.held += 1
        for r in send:
            r.held = 0
        return chunks(send)
    return policy


def youngest_then_every(k):
    """The youngest 50 pending rows every cadence; the others due go in
    further requests every k-th cadence (or whenever they fill one)."""
    state = {"n": 0}

    def policy(live, t, c):
        n = state["n"]
        state["n"] += 1
        live = sorted(live, key=lambda r: -r.created)
        first, rest = live[:BATCH], live[BATCH:]
        due = [r for r in rest if r.due <= t + c / 2]
        sends = [first] if first else []
        if n % k == 0 or len(due) >= BATCH:
            due.sort(key=lambda r: (not at_deadline(r, t, c), -r.created))
            m = max(1, len(due) // BATCH) if n % k == 0 else len(due) // BATCH
            sends += chunks(due[:m * BATCH])
        return [s for s in sends if s]
    return policy


def bands(y1, y2):
    """Every cadence before y1 s, every 2 cadences before y2 s, every 4
    before 40 s, then rarely; one request a cadence unless rows are late."""
    def interval(age, c, rnd):
        if age < y1:
            return c
        if age < y2:
            return 2 * c
        if age < 40:
            return 4 * c
        return min(60.0, 8 * c * (age / 40) ** 2)

    def policy(live, t, c):
        due = [r for r in live if r.due <= t + c / 2]
        must = [r for r in due if at_deadline(r, t, c) or r.due <= t - c / 2 or t - r.created < 5]
        due.sort(key=lambda r: (not at_deadline(r, t, c), r.due > t - c / 2, -r.created))
        n = max(1 if due else 0, math.ceil(len(must) / BATCH))
        return chunks(due[:n * BATCH])
    return policy, interval


def survival(a):
    a = min(a, CUT)
    return (1 - NEVER) * math.exp(-a / MEAN) + NEVER if a < CUT else NEVER


def oracle(lam):
    """Knows the delay distribution: ranks every pending row by the paid
    payments a check now keeps within 1.5 s (that would miss it if checked a
    cadence later) and sends a further request only while its 50 rows save
    more than `lam` such misses."""
    limit = 1.5 - RTT - 0.02

    def value(r, t, c):
        lo, hi = max(r.last, t - limit), min(t, t + c - limit)
        if hi <= lo:
            return 0.0
        return (survival(lo - r.created) - survival(hi - r.created)) / survival(r.last - r.created)

    def policy(live, t, c):
        must = [r for r in live if at_deadline(r, t, c / 2) and r.due <= t + c / 2]
        ids = {id(r) for r in must}
        cand = sorted(((value(r, t, c), r) for r in live if id(r) not in ids), key=lambda x: -x[0])
        send = list(must)
        i = 0
        k = math.ceil(len(send) / BATCH)
        while i < len(cand) and len(send) < k * BATCH:
            send.append(cand[i][1])
            i += 1
        while i < len(cand):
            part = cand[i:i + BATCH]
            if sum(v for v, _ in part) < lam:
                break
            send += [r for _, r in part]
            i += BATCH
        return chunks(send)
    return policy


def rotation(gap):
    """Off the grid: whenever the row due first is due, one request with the
    50 rows due soonest; a hot row is due `gap` s after its last check."""
    def policy(live, t, c):
        pend = sorted(live, key=lambda r: r.due)
        sends, i = [], 0
        while i < len(pend) and pend[i].due <= t:
            sends.append(pend[i:i + BATCH])
            i += BATCH
        return sends

    def interval(age, c, rnd):
        return gap if age < HOT else min(gap * (age / HOT) ** 2, 60.0)
    return policy, interval


def main():
    quick = "--quick" in sys.argv
    seeds = (1,) if quick else (1, 2, 3)
    cadences = (1.0,) if quick else (0.8, 1.0, 1.2)
    trials = []
    for c in cadences:
        trials.append(("today", "", c, today, today_interval, 0.0, None))
        for y in (8, 10, 11):
            trials.append(("partial waits", f"young < {y} s", c, partial_waits(y), today_interval, 0.0, None))
        for k in (2, 3):
            trials.append(("youngest 50 + every k", f"k = {k}", c, youngest_then_every(k), today_interval, 0.0, None))
        for y1, y2 in ((8, 18), (11, 22)):
            p, iv = bands(y1, y2)
            trials.append(("bands 1/2/4 cadences", f"{y1} s, {y2} s", c, p, iv, 0.0, None))
        for lam in (0.15, 0.3, 0.5):
            trials.append(("oracle greedy", f"lambda {lam}", c, oracle(lam), today_interval, 0.0, None))
    if not quick:
        for gap in (1.3, 1.4):
            p, iv = rotation(gap)
            trials.append(("rotation (off grid)", f"gap {gap} s", 1.0, p, iv, gap, 0.05))
    print(__doc__.split("\n\n")[0])
    print(f"{'family':<24} {'parameter':<14} {'cadence':>7} {'req/conf':>9} {'x bound':>8} {'p99 s':>6}")
    best = {}
    for name, param, c, policy, interval, first, tick in trials:
        res = [run(policy, c, s, interval, first, tick) for s in seeds]
        rpc = sum(r[0] for r in res) / len(res)
        p99 = max(r[1] for r in res)
        ratio = rpc / BOUND[c]
        print(f"{name:<24} {param:<14} {c:>6.1f}s {rpc:>9.4f} {ratio:>8.2f} {p99:>6.2f}", flush=True)
        if p99 <= 1.5 and ratio < best.get(name, (9e9,))[0]:
            best[name] = (ratio, param, c)
    print("\nbest ratio per family with p99 <= 1.5 s (aim: <= 1.25):")
    for name, (ratio, param, c) in sorted(best.items(), key=lambda x: x[1][0]):
        print(f"  {name:<24} {ratio:.2f}  ({param or 'as shipped'}, cadence {c} s)")


if __name__ == "__main__":
    main()
