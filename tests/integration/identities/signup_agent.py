#!/usr/bin/env python3
"""signup_agent.py — a scripted agent for tests/integration/identities/test_identities.py: it runs inside a Corral
session (shell agent) bound to an identity and plays the seed's loop with the Python SDK alone: it signs up at the
test's service with its own address (or phone number), waits for the code the service mails (or texts) to it, and
verifies. On a later run in the same worktree (after suspend and resume) it lists the inbox instead, so the test can
see that earlier mail survived corrald's restart. It reports on stdout and in files of its worktree."""
import json
import os
import sys
import time
import urllib.request

from corral import CorralClient, CorralError


def post(url, doc):
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def main():
    service, mode = sys.argv[1], sys.argv[2]
    other = sys.argv[3] if len(sys.argv) > 3 else None
    c = CorralClient()
    if os.path.exists("signed-up.json"):
        # resumed: every earlier message must still be here, even though corrald restarted meanwhile
        subjects = [m.subject for m in c.inbox.list(limit=50)]
        with open("inbox-after-resume.json", "w") as f:
            json.dump(subjects, f)
        print("RESUMED", len(subjects), flush=True)
    else:
        # an agent reaches only its own identity: another one is as if it did not exist
        if other:
            try:
                CorralClient(identity_id=other).email
                cross = "reached"
            except CorralError as e:
                cross = "%s %s" % (e.status, e.code)
            with open("cross.txt", "w") as f:
                f.write(cross)
        started = time.time()
        if mode == "mail":
            post(service + "/signup", {"email": c.email})
            msg = c.inbox.wait_for(subject_contains="verification", timeout=30)
            code = msg.otp
        else:
            post(service + "/signup_sms", {"phone": c.phone})
            code = c.otp(timeout=30)
        result = post(service + "/verify", {"who": c.email if mode == "mail" else c.phone, "code": code})
        with open("signed-up.json", "w") as f:
            json.dump({"who": c.email, "phone": c.phone, "code": code, "ok": result.get("ok"),
                       "seconds": time.time() - started}, f)
        print("VERIFIED" if result.get("ok") else "REFUSED", flush=True)
    while True:  # stay alive until the session is suspended
        time.sleep(1)


if __name__ == "__main__":
    main()
