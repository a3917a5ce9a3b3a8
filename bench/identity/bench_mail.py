#!/usr/bin/env python3
"""bench_mail.py — identities' mail path, measured with real processes (tests/integration/identities/stack.py):
(a) mails/s through the relay's SMTP listener into sealed storage (parsed with GMime, codes found with PCRE2, sealed
with crypto_box_seal, appended to the inbox stream), from C client connections at once, counted by the relay's
/metrics; (b) the time from SMTP end-of-data (the client's final "." sent) to the Python SDK's inbox.wait_for
returning the message inside the host, at a steady rate — relay, downlink note, corrald's fetch, open and store,
and the long poll's answer. Prints medians and percentiles; a benchmark, never a test.

usage: bench_mail.py [--build DIR] [--mails N] [--conns C] [--latency N] [--rate R] [--runs K]"""
import argparse
import os
import smtplib
import statistics
import sys
import threading
import time
from multiprocessing import Pool

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "integration", "identities"))
sys.path.insert(0, os.path.join(SRC, "clients", "python"))
from stack import Stack, http, wait_until  # noqa: E402

BODY = ("Hello,\r\n\r\nYour verification code is 482913. It expires in 10 minutes.\r\n"
        "Or confirm at https://acme.example/verify?t=abcdef\r\n\r\n" + "Some more text to make it a usual size.\r\n" * 20)


def send_many(args):
    port, rcpt, n, tag = args
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        for i in range(n):
            msg = "From: bench@acme.example\r\nTo: %s\r\nSubject: bench %s %d\r\n\r\n%s" % (rcpt, tag, i, BODY)
            s.sendmail("bench@acme.example", [rcpt], msg)
    return n


def metric(url, name):
    st, body = http("GET", url + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


class EodSMTP(smtplib.SMTP):
    """Notes the moment the message's final "." went out (end of data)."""
    eod = 0.0

    def send(self, s):
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.eod = time.perf_counter()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build", "rel"))
    ap.add_argument("--mails", type=int, default=4000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--latency", type=int, default=300)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    bin_dir = os.path.join(a.build, "bin")
    st = Stack(bin_dir, prefix="cr-bench-mail-")
    try:
        from corral import CorralClient
        r = st.corral("identity", "create", "bench-bot")
        assert r.returncode == 0, r.stderr
        rcpt = "bench-bot@agents.test"
        print("bench_mail: build %s; %d mails over %d SMTP connections, %d runs" % (a.build, a.mails, a.conns, a.runs))
        rates = []
        for run in range(a.runs):
            before = metric(st.relay_url, "corral_inbound_mails_total")
            per = a.mails // a.conns
            t0 = time.perf_counter()
            with Pool(a.conns) as pool:
                pool.map(send_many, [(st.smtp_port, rcpt, per, "r%dc%d" % (run, c)) for c in range(a.conns)])
            wait_until(lambda: metric(st.relay_url, "corral_inbound_mails_total") >= before + per * a.conns, 120, "storage")
            dt = time.perf_counter() - t0
            rates.append(per * a.conns / dt)
            print("  run %d: %d mails stored sealed in %.2f s = %.0f mails/s" % (run + 1, per * a.conns, dt, rates[-1]))
        print("(a) SMTP -> sealed inbox: median %.0f mails/s (runs: %s)" % (statistics.median(rates),
                                                                          ", ".join("%.0f" % x for x in rates)))
        # let corrald take in what (a) sent before (b) measures it
        client = CorralClient(identity_id="bench-bot", url="unix:" + st.sock, token="")
        time.sleep(2)
        lat = []
        s = EodSMTP("127.0.0.1", st.smtp_port, timeout=30)
        for i in range(a.latency):
            subject = "lat %d %f" % (i, time.time())
            got = {}

            def waiter():
                m = client.inbox.wait_for(subject_contains=subject, timeout=20)
                got["t"] = time.perf_counter()
                got["m"] = m
            th = threading.Thread(target=waiter)
            th.start()
            time.sleep(0.01)  # the long poll is waiting
            msg = "From: bench@acme.example\r\nTo: %s\r\nSubject: %s\r\n\r\n%s" % (rcpt, subject, BODY)
            s.sendmail("bench@acme.example", [rcpt], msg)
            th.join()
            lat.append((got["t"] - s.eod) * 1000.0)
            time.sleep(max(0.0, 1.0 / a.rate - 0.01))
        s.quit()
        print("(b) SMTP end-of-data -> SDK wait_for returns (%d mails at %.0f/s): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, "
              "max %.1f ms" % (len(lat), a.rate, pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat)))
    finally:
        st.close()


if __name__ == "__main__":
    main()
