#!/usr/bin/env python3
"""test_relay_web.py — the relay serves the web app from web.root at / (relay/src/web.c): the files with their types,
a strict Content-Security-Policy and the other security headers on every answer, caching by kind, precompressed .gz
for a browser that takes it, conditional requests, and nothing outside the root or hidden: dot files, dot segments,
directories and unknown paths are 404; the API's own paths stay the API's."""
import gzip
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.join(os.environ.get("CORRAL_BINARY_DIR", os.path.join(SRC, "build")), "bin")


def get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict((k.lower(), v) for k, v in r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict((k.lower(), v) for k, v in e.headers.items()), e.read()


class RelayWeb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cr-web-")
        root = os.path.join(cls.tmp, "dist")
        os.makedirs(os.path.join(root, "assets"))
        os.makedirs(os.path.join(root, "sub"))
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<!doctype html><title>Corral</title><script src=/assets/app.3f2a.js></script>")
        cls.js = b"console.log('corral');\n" * 200
        with open(os.path.join(root, "assets", "app.3f2a.js"), "wb") as f:
            f.write(cls.js)
        with gzip.open(os.path.join(root, "assets", "app.3f2a.js.gz"), "wb") as f:
            f.write(cls.js)
        with open(os.path.join(root, "manifest.webmanifest"), "w") as f:
            f.write('{"name": "Corral"}')
        with open(os.path.join(root, ".env"), "w") as f:
            f.write("SECRET=1")
        with open(os.path.join(cls.tmp, "outside.txt"), "w") as f:
            f.write("outside")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cls.url = "http://127.0.0.1:%d" % port
        env = dict(os.environ, CORRAL_HTTP_LISTEN="127.0.0.1:%d" % port, CORRAL_DATA_DIR=os.path.join(cls.tmp, "relay"),
                   CORRAL_WEB_ROOT=root, CORRAL_REDIS_URL="")
        cls.log = open(os.path.join(cls.tmp, "relay.log"), "wb")
        cls.relay = subprocess.Popen([os.path.join(BIN, "corral-relay")], env=env, stdout=cls.log, stderr=subprocess.STDOUT)
        end = time.time() + 15
        while time.time() < end:
            try:
                if get(cls.url + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.relay.terminate()
        try:
            cls.relay.wait(15)
        except subprocess.TimeoutExpired:
            cls.relay.kill()
            cls.relay.wait()
        cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check_security_headers(self, h):
        csp = h.get("content-security-policy", "")
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertEqual(h.get("x-content-type-options"), "nosniff")
        self.assertEqual(h.get("referrer-policy"), "no-referrer")

    def test_index(self):
        st, h, body = get(self.url + "/")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/html"), h)
        self.assertIn(b"<title>Corral</title>", body)
        self.assertEqual(h["cache-control"], "no-cache")
        self.check_security_headers(h)

    def test_assets_cached_and_compressed(self):
        st, h, body = get(self.url + "/assets/app.3f2a.js")
        self.assertEqual(st, 200)
        self.assertIn("javascript", h["content-type"])
        self.assertEqual(body, self.js)
        self.assertIn("immutable", h["cache-control"])
        self.check_security_headers(h)
        st, h, body = get(self.url + "/assets/app.3f2a.js", {"Accept-Encoding": "gzip"})
        self.assertEqual(st, 200)
        self.assertEqual(h.get("content-encoding"), "gzip")
        self.assertEqual(gzip.decompress(body), self.js)
        etag = h.get("etag")
        self.assertTrue(etag)
        st, h, body = get(self.url + "/assets/app.3f2a.js", {"If-None-Match": etag, "Accept-Encoding": "gzip"})
        self.assertEqual(st, 304)

    def test_manifest_type(self):
        st, h, _ = get(self.url + "/manifest.webmanifest")
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "application/manifest+json")

    def test_nothing_hidden_or_outside(self):
        for path in ("/.env", "/sub", "/sub/", "/nope.js", "/../outside.txt", "/assets/../../outside.txt", "/%2e%2e/outside.txt"):
            st, h, body = get(self.url + path)
            self.assertEqual(st, 404, path)
            self.assertNotIn(b"SECRET", body)
            self.assertNotIn(b"outside", body)

    def test_api_paths_stay_the_api(self):
        st, h, body = get(self.url + "/v1/sessions")
        self.assertEqual(st, 401, body)
        st, h, body = get(self.url + "/v1/nope")
        self.assertEqual(st, 404)
        self.assertIn(b'"not_found"', body)

    def test_head_and_post(self):
        st, h, body = get(self.url + "/index.html", method="HEAD")
        self.assertEqual(st, 200)
        self.assertEqual(body, b"")
        req = urllib.request.Request(self.url + "/index.html", data=b"x", method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
            self.fail("POST to a file was answered")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 404)


if __name__ == "__main__":
    unittest.main(verbosity=2)
