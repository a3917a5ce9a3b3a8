# make_vectors.py — generates proto/vectors/vectors.json and README.md: canonical wire-protocol test vectors made by
# an implementation independent of the C code (Python 3 standard library only: msgpack encoder, XChaCha20-Poly1305).
"""Regenerate with:  python3 proto/vectors/make_vectors.py

Everything here is written from the protocol description (DESIGN.md section 2, proto/include/corral/*.h), not from
the C sources: a canonical msgpack encoder, a pure-Python XChaCha20-Poly1305-IETF AEAD (self-checked against RFC 8439
section 2.8.2 and draft-irtf-cfrg-xchacha-03 appendix A.3.1 before anything is written), and the vector definitions.
The output is deterministic: running it twice gives the same bytes.
"""

import base64
import hmac
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- canonical msgpack ---------------------------------------------------------------------------------------------


class Raw(bytes):
    """Bytes written verbatim in place of a value (only for invalid vectors)."""


class BadStr(bytes):
    """A msgpack str whose payload is these bytes, valid UTF-8 or not (only for invalid vectors)."""


class Pairs(list):
    """A map given as a list of (key, value) pairs: allows duplicate and non-string keys (only for invalid vectors)."""


def _str_header(n):
    if n < 32:
        return bytes([0xA0 | n])
    if n < 0x100:
        return bytes([0xD9, n])
    if n < 0x10000:
        return b"\xda" + struct.pack(">H", n)
    if n < 0x100000000:
        return b"\xdb" + struct.pack(">I", n)
    raise ValueError("string too long for msgpack")


def _bin_header(n):
    if n < 0x100:
        return bytes([0xC4, n])
    if n < 0x10000:
        return b"\xc5" + struct.pack(">H", n)
    if n < 0x100000000:
        return b"\xc6" + struct.pack(">I", n)
    raise ValueError("bin too long for msgpack")


def _container_header(n, fix, b16, b32):
    if n < 16:
        return bytes([fix | n])
    if n < 0x10000:
        return bytes([b16]) + struct.pack(">H", n)
    if n < 0x100000000:
        return bytes([b32]) + struct.pack(">I", n)
    raise ValueError("container too large for msgpack")


def _int(v):
    if v >= 0:
        if v <= 0x7F:
            return bytes([v])
        if v <= 0xFF:
            return b"\xcc" + struct.pack(">B", v)
        if v <= 0xFFFF:
            return b"\xcd" + struct.pack(">H", v)
        if v <= 0xFFFFFFFF:
            return b"\xce" + struct.pack(">I", v)
        if v <= 0xFFFFFFFFFFFFFFFF:
            return b"\xcf" + struct.pack(">Q", v)
        raise ValueError("integer above uint64")
    if v >= -32:
        return struct.pack(">b", v)
    if v >= -0x80:
        return b"\xd0" + struct.pack(">b", v)
    if v >= -0x8000:
        return b"\xd1" + struct.pack(">h", v)
    if v >= -0x80000000:
        return b"\xd2" + struct.pack(">i", v)
    if v >= -0x8000000000000000:
        return b"\xd3" + struct.pack(">q", v)
    raise ValueError("integer below int64")


def mp(v):
    """The canonical msgpack of v: ints in their smallest form, floats always float64, dict order kept."""
    if isinstance(v, Raw):
        return bytes(v)
    if isinstance(v, BadStr):
        return _str_header(len(v)) + bytes(v)
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        return _int(v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return _str_header(len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        return _bin_header(len(v)) + bytes(v)
    if isinstance(v, Pairs):
        return _container_header(len(v), 0x80, 0xDE, 0xDF) + b"".join(mp(k) + mp(x) for k, x in v)
    if isinstance(v, (list, tuple)):
        return _container_header(len(v), 0x90, 0xDC, 0xDD) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return _container_header(len(v), 0x80, 0xDE, 0xDF) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError("cannot encode %r" % type(v))


def _msgpack_selfcheck():
    cases = [
        (None, "c0"), (False, "c2"), (True, "c3"), (0, "00"), (127, "7f"), (128, "cc80"), (255, "ccff"),
        (256, "cd0100"), (65535, "cdffff"), (65536, "ce00010000"), (2**32 - 1, "ceffffffff"),
        (2**32, "cf0000000100000000"), (2**64 - 1, "cfffffffffffffffff"), (-1, "ff"), (-32, "e0"), (-33, "d0df"),
        (-128, "d080"), (-129, "d1ff7f"), (-32768, "d18000"), (-32769, "d2ffff7fff"), (-2**31, "d280000000"),
        (-2**31 - 1, "d3ffffffff7fffffff"), (-2**63, "d38000000000000000"), (1.5, "cb3ff8000000000000"),
        ("", "a0"), ("a" * 31, "bf" + "61" * 31), ("a" * 32, "d920" + "61" * 32), ("a" * 256, "da0100" + "61" * 256),
        (b"", "c400"), (b"\x01" * 256, "c50100" + "01" * 256), ([], "90"), ([1] * 16, "dc0010" + "01" * 16),
        ({}, "80"), ({"a": 1}, "81a16101"),
    ]
    for v, want in cases:
        got = mp(v).hex()
        if got != want:
            sys.exit("msgpack self-check failed for %r: %s != %s" % (v, got, want))
    if mp({str(i): i for i in range(16)})[:3] != b"\xde\x00\x10":
        sys.exit("msgpack self-check failed for map16")


# ---- XChaCha20-Poly1305-IETF ---------------------------------------------------------------------------------------

_MASK = 0xFFFFFFFF
_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


def _rounds(s):
    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & _MASK
        s[d] ^= s[a]
        s[d] = ((s[d] << 16) | (s[d] >> 16)) & _MASK
        s[c] = (s[c] + s[d]) & _MASK
        s[b] ^= s[c]
        s[b] = ((s[b] << 12) | (s[b] >> 20)) & _MASK
        s[a] = (s[a] + s[b]) & _MASK
        s[d] ^= s[a]
        s[d] = ((s[d] << 8) | (s[d] >> 24)) & _MASK
        s[c] = (s[c] + s[d]) & _MASK
        s[b] ^= s[c]
        s[b] = ((s[b] << 7) | (s[b] >> 25)) & _MASK

    for _ in range(10):
        qr(0, 4, 8, 12)
        qr(1, 5, 9, 13)
        qr(2, 6, 10, 14)
        qr(3, 7, 11, 15)
        qr(0, 5, 10, 15)
        qr(1, 6, 11, 12)
        qr(2, 7, 8, 13)
        qr(3, 4, 9, 14)


def chacha20_block(key, counter, nonce12):
    init = list(_SIGMA) + list(struct.unpack("<8I", key)) + [counter & _MASK] + list(struct.unpack("<3I", nonce12))
    s = list(init)
    _rounds(s)
    return struct.pack("<16I", *((s[i] + init[i]) & _MASK for i in range(16)))


def hchacha20(key, nonce16):
    s = list(_SIGMA) + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    _rounds(s)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def chacha20_xor(key, counter, nonce12, data):
    out = bytearray()
    for off in range(0, len(data), 64):
        block = chacha20_block(key, counter + off // 64, nonce12)
        chunk = data[off:off + 64]
        out += bytes(a ^ b for a, b in zip(chunk, block))
    return bytes(out)


def poly1305(key32, msg):
    r = int.from_bytes(key32[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key32[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for off in range(0, len(msg), 16):
        n = int.from_bytes(msg[off:off + 16] + b"\x01", "little")
        acc = (acc + n) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def _pad16(b):
    return b"\x00" * (-len(b) % 16)


def _mac_data(ad, ct):
    return ad + _pad16(ad) + ct + _pad16(ct) + struct.pack("<QQ", len(ad), len(ct))


def chacha20poly1305_encrypt(key, nonce12, pt, ad):
    """RFC 8439 section 2.8 AEAD: ciphertext || tag."""
    otk = chacha20_block(key, 0, nonce12)[:32]
    ct = chacha20_xor(key, 1, nonce12, pt)
    return ct + poly1305(otk, _mac_data(ad, ct))


def chacha20poly1305_decrypt(key, nonce12, box, ad):
    """Returns the plaintext, or None when the tag does not verify."""
    if len(box) < 16:
        return None
    ct, tag = box[:-16], box[-16:]
    otk = chacha20_block(key, 0, nonce12)[:32]
    if not hmac.compare_digest(poly1305(otk, _mac_data(ad, ct)), tag):
        return None
    return chacha20_xor(key, 1, nonce12, ct)


def xchacha20poly1305_encrypt(key, nonce24, pt, ad):
    """XChaCha20-Poly1305-IETF: subkey = HChaCha20(key, nonce[0:16]), then RFC 8439 with 0^4 || nonce[16:24]."""
    return chacha20poly1305_encrypt(hchacha20(key, nonce24[:16]), b"\x00" * 4 + nonce24[16:], pt, ad)


def xchacha20poly1305_decrypt(key, nonce24, box, ad):
    return chacha20poly1305_decrypt(hchacha20(key, nonce24[:16]), b"\x00" * 4 + nonce24[16:], box, ad)


_SUNSCREEN = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
              b"sunscreen would be it.")


def _aead_selfcheck():
    """Aborts unless the AEAD reproduces the published vectors. Returns a line for the log."""
    key = bytes(range(0x80, 0xA0))
    ad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    # RFC 8439 section 2.8.2
    nonce = bytes.fromhex("070000004041424344454647")
    want = bytes.fromhex(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
        "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
        "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
        "3ff4def08e4b7a9de576d26586cec64b6116"
        "1ae10b594f09e26a7e902ecbd0600691")
    got = chacha20poly1305_encrypt(key, nonce, _SUNSCREEN, ad)
    if got != want:
        sys.exit("AEAD self-check FAILED: RFC 8439 2.8.2 gives %s" % got.hex())
    if chacha20poly1305_decrypt(key, nonce, want, ad) != _SUNSCREEN:
        sys.exit("AEAD self-check FAILED: RFC 8439 2.8.2 does not open")
    # draft-irtf-cfrg-xchacha-03 appendix A.3.1
    xnonce = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
    xwant = bytes.fromhex(
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
        "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
        "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
        "21f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49")
    got = xchacha20poly1305_encrypt(key, xnonce, _SUNSCREEN, ad)
    if got != xwant:
        sys.exit("AEAD self-check FAILED: draft-irtf-cfrg-xchacha-03 A.3.1 gives %s" % got.hex())
    if xchacha20poly1305_decrypt(key, xnonce, xwant, ad) != _SUNSCREEN:
        sys.exit("AEAD self-check FAILED: draft-irtf-cfrg-xchacha-03 A.3.1 does not open")
    bad = bytearray(xwant)
    bad[5] ^= 1
    if xchacha20poly1305_decrypt(key, xnonce, bytes(bad), ad) is not None:
        sys.exit("AEAD self-check FAILED: a flipped byte opens")
    return "AEAD self-checks passed: RFC 8439 2.8.2, draft-irtf-cfrg-xchacha-03 A.3.1"


# ---- sealing (DESIGN.md 2.1, proto/include/corral/seal.h) ------------------------------------------------------------

SEAL_KEY = bytes(range(0x00, 0x20))
SEAL_NONCE = bytes(range(0x40, 0x58))
SEAL_TEAM = "team-1"


def ad_event(team, sid, seq, k):
    return b"\x00".join([b"corral1", b"e", team.encode(), sid.encode(), str(seq).encode(), k.encode()])


def ad_action(team, sid, aid, k):
    return b"\x00".join([b"corral1", b"a", team.encode(), sid.encode(), aid.encode(), k.encode()])


def seal_box(body_bytes, ad):
    return b"\x01" + SEAL_NONCE + xchacha20poly1305_encrypt(SEAL_KEY, SEAL_NONCE, body_bytes, ad)


# ---- JSON twin -----------------------------------------------------------------------------------------------------


def to_json(v):
    if isinstance(v, (bytes, bytearray)):
        return {"$bin": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    return v


# ---- the vectors ---------------------------------------------------------------------------------------------------

TS = 1764000000000  # 2025-11-24, > 2^32 so always a uint64 on the wire
SID = "01JD0000000000000000000000"
SID2 = "01JD8Z5C3V2R9QWXK4M7N6PTBE"
SID3 = "01JDA7GQ5ZK3M2X9C8V4N6BT0R"
AID = "01JD00000000000000000A0001"
DEVICE = "dev-01JD9W2T0F3H"


def event(k, body, seq=1, pri=1, idn=None, sid=SID, ts=TS, extra=None):
    e = {"v": 1, "k": k, "sid": sid, "seq": seq, "ts": ts}
    if idn is not None:
        e["idn"] = idn
    e["pri"] = pri
    if extra:
        e.update(extra)
    e["b"] = body
    return e


def action(k, body, aid=AID, sid=SID, ref=None, by=None, ts=TS, extra=None):
    a = {"v": 1, "k": k, "sid": sid, "aid": aid}
    if ref is not None:
        a["ref"] = ref
    a["ts"] = ts
    if by is not None:
        a["by"] = by
    if extra:
        a.update(extra)
    a["b"] = body
    return a


def deep(levels):
    """`levels` arrays nested one in the other, the innermost holding 1."""
    v = [1]
    for _ in range(levels - 1):
        v = [v]
    return v


def tiny_wav():
    """A 16-bit mono 8 kHz WAV of 8 samples (60 bytes)."""
    samples = struct.pack("<8h", 0, 1200, 2300, 1200, 0, -1200, -2300, -1200)
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(samples)) + b"WAVE" + b"fmt " +
            struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples)


def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


def _with(d, key, value):
    """d with d[key] replaced (same position) or added before "b"."""
    if key in d:
        return {k: (value if k == key else v) for k, v in d.items()}
    out = {}
    for k, v in d.items():
        if k == "b":
            out[key] = value
        out[k] = v
    return out


PATCH = ("diff --git a/src/app.c b/src/app.c\n"
         "--- a/src/app.c\n"
         "+++ b/src/app.c\n"
         "@@ -1,3 +1,4 @@\n"
         " #include <stdio.h>\n"
         "+#include <stdlib.h>\n"
         " int main(void)\n"
         " {\n"
         "diff --git a/README.md b/README.md\n"
         "deleted file mode 100644\n"
         "--- a/README.md\n"
         "+++ /dev/null\n"
         "@@ -1,2 +0,0 @@\n"
         "-# app\n"
         "-\tan old \"readme\" with a tab\n")

# (name, envelope). The envelope of each is plain; its sealed twin is derived.
VALID = [
    ("event.session.started", event("session.started", {
        "name": "fix-login", "agent": "claude", "branch": "corral/fix-login", "base": "main",
        "prompt": "Fix the login bug when the password has a space"}, seq=1, pri=1, idn="ana-dev")),
    ("event.session.state", event("session.state", {"state": "waiting", "reason": "needs approval"}, seq=2, pri=1)),
    ("event.agent.message.unicode", event("agent.message", {"text": "héllo — 世界 🚀"}, seq=3, pri=1)),
    ("event.agent.tool", event("agent.tool", {"tool": "Bash", "summary": "make -j8 test"}, seq=4, pri=0)),
    ("event.approval.request", event("approval.request", {
        "rid": "toolu_01", "tool": "Bash", "summary": "rm -rf build/",
        "input": {
            "command": "rm -rf build/", "timeout_ms": 120000, "dry_run": False, "cwd": None,
            "env": {"CI": "1", "LANG": "C.UTF-8"}, "args": ["-r", "-f", "build/"],
            "ints": [0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 18446744073709551615,
                     -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -9223372036854775808],
            "floats": [1.5, -0.25, 3.0, 0.1, 1e+100],
        }}, seq=5, pri=2, idn="ana-dev")),
    ("event.question", event("question", {
        "rid": "toolu_02", "text": "Which database should the tests use?", "options": ["sqlite", "postgres", "none"]},
        seq=6, pri=2)),
    ("event.diff.ready", event("diff.ready", {
        "base": "3f2a9c1", "head": "8b7e4d0",
        "files": [{"path": "src/app.c", "status": "modified", "add": 1, "del": 0},
                  {"path": "README.md", "status": "deleted", "add": 0, "del": 2}],
        "add": 1, "del": 2, "patch": PATCH, "truncated": False}, seq=7, pri=2)),
    ("event.action.applied", event("action.applied", {
        "aid": AID, "ok": True, "detail": "merged into main", "commit": "8b7e4d0c1a2b3c4d5e6f708192a3b4c5d6e7f809"},
        seq=8, pri=1)),
    ("event.inbox.message", event("inbox.message", {
        "channel": "email", "from": "no-reply@example.com", "subject": "Your sign-in code", "otp": "493817"},
        seq=9, pri=1, idn="ana-dev")),
    ("event.session.done", event("session.done", {"summary": "Fixed the login bug; 3 tests added.", "turns": 14,
                                                  "cost_usd": 0.42}, seq=10, pri=1)),
    ("event.str8", event("agent.message", {"text": "0123456789abcdefghijklmnopqrstuvwxyzABCD"}, seq=11, pri=1)),
    ("event.str16", event("agent.message", {"text": ("The quick brown fox jumps over the lazy dog. " * 7)[:300]},
                          seq=12, pri=1)),
    ("event.seq_uint16", event("agent.tool", {"tool": "Read", "summary": "src/app.c"}, seq=300, pri=0,
                               sid=SID2)),
    ("event.seq_uint64_max", event("agent.tool", {"tool": "Read", "summary": "README.md"},
                                   seq=18446744073709551615, pri=0, sid=SID2)),
    ("event.unknown_key_top", event("agent.message", {"text": "a newer host"}, seq=13, pri=1,
                                    extra={"x-future": {"flag": True, "n": [1, 2]}})),
    ("event.unknown_key_body", event("agent.tool", {"tool": "Edit", "summary": "src/app.c",
                                                    "x-future": [1, "two", None]}, seq=14, pri=1)),
    ("event.unknown_kind", event("session.future", {"anything": "goes", "n": 1}, seq=15, pri=1)),
    ("event.depth16", event("approval.request", {"rid": "toolu_03", "tool": "Edit", "summary": "deep input",
                                                 "input": deep(14)}, seq=16, pri=2, sid=SID3)),
    ("event.message_4096", event("agent.message", {"text": ("0123456789abcdef" * 256)}, seq=17, pri=1, sid=SID3)),
    ("event.empty_strings", event("session.started", {"name": "", "agent": "codex", "branch": "", "base": ""},
                                  seq=1, pri=0, sid=SID3)),
    ("action.approve", action("approve", {"rid": "toolu_01"})),
    ("action.reject", action("reject", {"rid": "toolu_01", "reason": "not build/, only dist/", "discard": True},
                             aid="01JD00000000000000000A0002")),
    ("action.reply.text", action("reply", {"rid": "toolu_02", "text": "postgres"}, aid="01JD00000000000000000A0003")),
    ("action.reply.audio", action("reply", {"rid": "toolu_02", "transcript": "use postgres please",
                                            "audio": tiny_wav(), "mime": "audio/wav"},
                                  aid="01JD00000000000000000A0004")),
    ("action.task", action("task", {"text": "Now add a regression test for the login bug"},
                           aid="01JD00000000000000000A0005")),
    ("action.interrupt", action("interrupt", {}, aid="01JD00000000000000000A0006")),
    ("action.interrupt.no_body", _without(action("interrupt", {}, aid="01JD00000000000000000A000B"), "b")),
    ("action.suspend", action("suspend", {}, aid="01JD00000000000000000A0007")),
    ("action.resume", action("resume", {}, aid="01JD00000000000000000A0008")),
    ("action.ref_and_by", action("approve", {"rid": "toolu_01"}, aid="01JD00000000000000000A0009", ref=5,
                                 by=DEVICE)),
    ("action.ref_uint16_by", action("reply", {"text": "yes"}, aid="01JD00000000000000000A000A", ref=300, by=DEVICE,
                                    sid=SID2)),
]


def _invalid():
    ev = event("agent.message", {"text": "hello"}, seq=1, pri=1)
    act = action("approve", {"rid": "toolu_01"})
    full = mp(ev)
    cut_sid = full[:full.index(SID.encode()) + 10]
    cut_body = full[:full.index(b"hello") + 2]
    dup_sid = Pairs([("v", 1), ("k", "agent.message"), ("sid", SID), ("seq", 1), ("ts", TS), ("pri", 1),
                     ("sid", SID2), ("b", {"text": "hello"})])
    ok_ar = {"rid": "toolu_01", "tool": "Bash", "summary": "ls"}
    diff = {"base": "a", "head": "b", "files": [{"path": "x", "status": "weird", "add": 1, "del": 0}],
            "add": 1, "del": 0, "patch": "", "truncated": False}
    E, A = "event", "action"
    return [
        ("truncated.mid_sid", E, cut_sid, "truncated", "sid"),
        ("truncated.mid_body", E, cut_body, "truncated", "b.text"),
        ("truncated.empty", E, b"", "truncated", ""),
        ("truncated.at_boundary", E, full[:full.index(b"\xa3pri")], "truncated", ""),
        ("map.count_huge", E, b"\xdf\xff\xff\xff\xff", "too_large", ""),
        ("string.declared_4gb", E, mp(_with(ev, "sid", Raw(b"\xdb\xff\xff\xff\xffabc"))), "too_large", "sid"),
        ("trailing_byte", E, full + b"\xc0", "trailing_bytes", ""),
        ("not_a_map", E, mp([1, "agent.message"]), "bad_envelope", ""),
        ("missing.v", E, mp(_without(ev, "v")), "bad_envelope", "v"),
        ("missing.k", E, mp(_without(ev, "k")), "bad_envelope", "k"),
        ("missing.sid", E, mp(_without(ev, "sid")), "bad_envelope", "sid"),
        ("missing.seq", E, mp(_without(ev, "seq")), "bad_envelope", "seq"),
        ("missing.ts", E, mp(_without(ev, "ts")), "bad_envelope", "ts"),
        ("missing.pri", E, mp(_without(ev, "pri")), "bad_envelope", "pri"),
        ("seq.zero", E, mp(_with(ev, "seq", 0)), "bad_envelope", "seq"),
        ("seq.string", E, mp(_with(ev, "seq", "1")), "bad_envelope", "seq"),
        ("seq.negative", E, mp(_with(ev, "seq", -1)), "bad_envelope", "seq"),
        ("seq.float", E, mp(_with(ev, "seq", 1.0)), "bad_envelope", "seq"),
        ("pri.3", E, mp(_with(ev, "pri", 3)), "bad_envelope", "pri"),
        ("v.2", E, mp(_with(ev, "v", 2)), "unsupported_version", "v"),
        ("sid.space", E, mp(_with(ev, "sid", "a b")), "bad_envelope", "sid"),
        ("sid.65_chars", E, mp(_with(ev, "sid", "S" * 65)), "bad_envelope", "sid"),
        ("sid.empty", E, mp(_with(ev, "sid", "")), "bad_envelope", "sid"),
        ("idn.bad", E, mp(_with(ev, "idn", "ana dev")), "bad_envelope", "idn"),
        ("k.bad_syntax", E, mp(_with(ev, "k", "Bad Kind")), "bad_envelope", "k"),
        ("k.action_in_event", E, mp(event("approve", {"rid": "toolu_01"})), "bad_envelope", "k"),
        ("duplicate_key", E, mp(dup_sid), "bad_envelope", "sid"),
        ("body.string", E, mp(_with(ev, "b", "hello")), "bad_envelope", "b"),
        ("body.approval.request.missing_rid", E, mp(event("approval.request", _without(ok_ar, "rid"), pri=2)),
         "bad_body", "b.rid"),
        ("body.approval.request.bad_rid", E, mp(event("approval.request", _with(ok_ar, "rid", "tool u"), pri=2)),
         "bad_body", "b.rid"),
        ("body.session.state.sleeping", E, mp(event("session.state", {"state": "sleeping"})), "bad_body", "b.state"),
        ("body.diff.ready.bad_status", E, mp(event("diff.ready", diff, pri=2)), "bad_body", "b.files.0.status"),
        ("body.session.done.turns_string", E, mp(event("session.done", {"summary": "x", "turns": "14"})),
         "bad_body", "b.turns"),
        ("body.agent.message.4097", E, mp(event("agent.message", {"text": "x" * 4097})), "too_large", "b.text"),
        ("string.65537", E, mp(event("session.started", {"name": "n", "agent": "a", "branch": "b", "base": "m",
                                                         "prompt": "p" * 65537})), "too_large", "b.prompt"),
        ("depth17", E, mp(event("approval.request", dict(ok_ar, input=deep(15)), pri=2)), "too_deep",
         "b.input" + ".0" * 14),
        ("ext_type", E, mp(event("approval.request", dict(ok_ar, input=Raw(b"\xd4\x01\x00")), pri=2)),
         "bad_msgpack", "b.input"),
        ("map_key_not_string", E, mp(event("agent.message", Pairs([(1, "one"), ("text", "hi")]))),
         "bad_msgpack", "b"),
        ("utf8.invalid", E, mp(event("agent.message", {"text": BadStr(b"caf\xc3(")})), "bad_encoding", "b.text"),
        ("utf8.surrogate", E, mp(event("agent.message", {"text": BadStr(b"\xed\xa0\x80")})), "bad_encoding",
         "b.text"),
        ("byte_c1", E, mp(_with(ev, "ts", Raw(b"\xc1"))), "bad_msgpack", "ts"),
        ("sealed.too_short", E, mp(_with(ev, "b", b"\x01" + bytes(39))), "bad_envelope", "b"),
        ("sealed.bad_version", E, mp(_with(ev, "b", b"\x02" + bytes(47))), "bad_envelope", "b"),
        ("action.unknown_kind", A, mp(action("explode", {})), "unknown_kind", "k"),
        ("action.event_kind", A, mp(action("agent.message", {"text": "hi"})), "unknown_kind", "k"),
        ("action.missing_aid", A, mp(_without(act, "aid")), "bad_envelope", "aid"),
        ("action.missing_ts", A, mp(_without(act, "ts")), "bad_envelope", "ts"),
        ("action.ref_zero", A, mp(action("approve", {"rid": "toolu_01"}, ref=0)), "bad_envelope", "ref"),
        ("action.bad_by", A, mp(action("approve", {"rid": "toolu_01"}, by="my phone")), "bad_envelope", "by"),
        ("action.reply.empty", A, mp(action("reply", {"rid": "toolu_02", "mime": "audio/wav"})), "bad_body", "b"),
        ("action.reply.audio_string", A, mp(action("reply", {"audio": "UklGRg=="})), "bad_body", "b.audio"),
        ("action.task.missing_text", A, mp(action("task", {})), "bad_body", "b.text"),
    ]


def canonical(env, kind):
    """The envelope as an encoder writes it: known keys only, in canonical order, b defaulting to {}."""
    order = ("v", "k", "sid", "seq", "ts", "idn", "pri", "b") if kind == "event" else \
        ("v", "k", "sid", "aid", "ref", "ts", "by", "b")
    out = {k: env[k] for k in order if k in env}
    out.setdefault("b", {})
    return out


def build():
    valid = []
    for name, env in VALID:
        kind = "action" if name.startswith("action.") else "event"
        body = env.get("b", {})  # an absent b is the empty map
        body_bytes = mp(body)
        if kind == "event":
            ad = ad_event(SEAL_TEAM, env["sid"], env["seq"], env["k"])
        else:
            ad = ad_action(SEAL_TEAM, env["sid"], env["aid"], env["k"])
        box = seal_box(body_bytes, ad)
        if xchacha20poly1305_decrypt(SEAL_KEY, box[1:25], box[25:], ad) != body_bytes:
            sys.exit("sealed body of %s does not open" % name)
        sealed_env = dict(env, b=box)  # b added at the end when absent
        v = {"name": name, "type": kind, "hex": mp(env).hex(), "json": to_json(env), "body_hex": body_bytes.hex()}
        s = {"ad_hex": ad.hex(), "box_hex": box.hex(), "hex": mp(sealed_env).hex(), "json": to_json(sealed_env)}
        # an encoder writes only the fields it knows, in canonical order, and b ({} when absent): when that is not
        # the vector's bytes (unknown keys, no b), the vector says what it is
        if mp(canonical(env, kind)) != mp(env):
            v["encoded_hex"] = mp(canonical(env, kind)).hex()
        if mp(canonical(sealed_env, kind)) != mp(sealed_env):
            s["encoded_hex"] = mp(canonical(sealed_env, kind)).hex()
        v["sealed"] = s
        valid.append(v)
    invalid = [{"name": n, "type": t, "hex": h.hex(), "error": e, "field": f} for n, t, h, e, f in _invalid()]
    names = [v["name"] for v in valid] + [v["name"] for v in invalid]
    if len(set(names)) != len(names):
        sys.exit("duplicate vector names")
    return {
        "version": 1,
        "seal": {"key": SEAL_KEY.hex(), "nonce": SEAL_NONCE.hex(), "team": SEAL_TEAM},
        "valid": valid,
        "invalid": invalid,
    }


README = """\
<!-- README.md — how to read and regenerate the wire-protocol test vectors in vectors.json. -->
# Wire-protocol test vectors

`vectors.json` holds canonical examples of the Corral wire protocol (DESIGN.md section 2, proto/PROTOCOL.md):
envelopes that every implementation must accept and re-encode byte for byte, their sealed twins, and envelopes that
every implementation must refuse with a given error code and field. They are generated by `make_vectors.py`, a
Python (standard library only) implementation that shares no code with the C library: its own msgpack encoder and
its own XChaCha20-Poly1305. `tests/unit/proto/vectors.c` checks the C library against them; a client in another
language should do the same.

Regenerate (deterministic; commit the result):

    python3 proto/vectors/make_vectors.py

The generator first checks its AEAD against RFC 8439 section 2.8.2 and draft-irtf-cfrg-xchacha-03 appendix A.3.1 and
stops if either does not match.

## The file

```
{"version": 1,
 "seal": {"key": "<32 bytes hex>", "nonce": "<24 bytes hex>", "team": "team-1"},
 "valid":   [{"name", "type": "event"|"action", "hex", "json", "body_hex", "encoded_hex"?,
              "sealed": {"ad_hex", "box_hex", "hex", "json", "encoded_hex"?}}, ...],
 "invalid": [{"name", "type": "event"|"action", "hex", "error", "field"}, ...]}
```

All byte strings are lowercase hex.

**valid** — for each vector:
- `hex`: the msgpack of the envelope, in canonical form: keys in the order an encoder writes them
  (event: `v k sid seq ts idn? pri b`; action: `v k sid aid ref? ts by? b`; optional keys only when present), every
  integer in its smallest encoding (positive and negative fixint, uint8/16/32/64, int8/16/32/64), floats always
  float64 (`0xcb`), str as fixstr/str8/str16/str32 and bin as bin8/16/32 by length, maps and arrays as
  fix/16/32 by count; body maps keep the key order shown.
- `json`: the same envelope as JSON (its "twin"): the same map, a bin written as `{"$bin": "<standard base64 with
  padding>"}`. Converting `json` to canonical msgpack gives exactly `hex`, and `hex` to JSON gives `json`.
- `body_hex`: the msgpack of the plain body (the value of `b`; `80`, the empty map, when `b` is absent).
- `encoded_hex` (only when it differs from `hex`): what an encoder that writes only the envelope fields it knows,
  in canonical order and always with `b`, gives for the decoded envelope. Unknown keys must be accepted by decoders
  (forward compatibility) but are not carried by a re-encode; an absent `b` decodes as `{}` and is written as such.
- A decoder must accept `hex`, give the fields of `json`, and re-encode it to `encoded_hex` or else `hex`.

**sealed** — the same envelope with its body sealed with the team key of `seal` (DESIGN.md 2.1):
- `ad_hex`: the associated data,
  event `"corral1" 0x00 "e" 0x00 team 0x00 sid 0x00 decimal(seq) 0x00 k`,
  action `"corral1" 0x00 "a" 0x00 team 0x00 sid 0x00 aid 0x00 k` (no trailing 0x00, no length prefixes).
- `box_hex`: `0x01 || nonce[24] || ciphertext || tag[16]`, where ciphertext || tag is
  XChaCha20-Poly1305-IETF(key, nonce, plaintext = `body_hex`, ad = `ad_hex`): the subkey is HChaCha20(key,
  nonce[0:16]), then ChaCha20-Poly1305 of RFC 8439 with the 12-byte nonce `00000000 || nonce[16:24]`. The
  nonce is fixed here so that the bytes are reproducible; real senders draw a random nonce for every body.
- `hex` / `json`: the envelope with `b` = bin(box) (in JSON `{"$bin": ...}`); `encoded_hex` as above.
- Opening `box_hex` with the key, team and the envelope's sid, seq (or aid) and k gives `body_hex`; any other key,
  team, sid, seq, aid or k, or any changed byte, must fail ("bad_seal").

**invalid** — `hex` must be refused by the decoder of `type` with the stable error code `error` (error.h,
PROTOCOL.md) and `field`, the dotted path of the offending value (`b.files.0.status`), or `""` when the error is
about the envelope as a whole. The bytes are as they would arrive on the wire, so some are not canonical (duplicate
keys, non-string keys, ext types, invalid UTF-8, truncation).

## Limits used

The defaults of DESIGN.md 2.2: strings up to 65536 bytes, agent.message text up to 4096 bytes, nesting up to 16
with the envelope itself at depth 1 (`event.depth16` is the deepest accepted, `depth17` is refused).
"""


def main():
    _msgpack_selfcheck()
    print(_aead_selfcheck())
    doc = build()
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    with open(os.path.join(HERE, "vectors.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    with open(os.path.join(HERE, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(README)
    print("wrote %s: %d valid, %d invalid vectors, %d bytes" %
          (os.path.join(HERE, "vectors.json"), len(doc["valid"]), len(doc["invalid"]), len(text.encode())))


if __name__ == "__main__":
    main()
